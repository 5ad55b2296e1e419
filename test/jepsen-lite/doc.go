// Package jepsenlite is ringkv's Jepsen-style test suite: real kvnode
// processes on hosts of their own (Linux network namespaces), faults at the
// packet and process level, and histories checked for linearizability and
// lost writes. See README.md for how to run it and read its output.
//
// The suite lives in the packages below this one (netns, kvnode, nemesis,
// workload, history, checker, report, runner) and the command
// cmd/jepsen-lite. This package holds only the scenario tests: the
// negative control, which shows that the whole pipeline catches a broken
// read path, its positive twin, and a short run of the churn nemesis.
package jepsenlite
