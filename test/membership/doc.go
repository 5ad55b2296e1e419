// Package membership holds the end-to-end tests of membership changes and
// online rebalancing: real kvnode processes on 127.0.0.1, driven with real
// kvctl commands, while a writer keeps writing through the client library.
// The tests are long; they run in `make test` outside the race detector.
package membership
