// Command kvctl is the command line client of ringkv, in the spirit of
// etcdctl:
//
//	kvctl put KEY VALUE [--if-absent | --if-version N] [--ttl 30s]  # VALUE "-" reads stdin
//	kvctl get KEY
//	kvctl del KEY [--if-version N]
//	kvctl cas KEY OLD NEW          # compare-and-swap on the value
//	kvctl ttl KEY                  # the time KEY has left to live, or "no ttl"
//	kvctl txn [--file F]           # an if/then/else transaction, as JSON
//	kvctl mget KEY...
//	kvctl mput KEY=VALUE...
//	kvctl scan [--prefix P] [--limit N] [--keys-only] [--page-size N]
//	kvctl watch [--prefix] KEY
//	kvctl cluster status
//	kvctl ring                     # replicas per node, evenness, moving shards
//	kvctl node remove ID           # drain ID and wait until it has left
//	kvctl rebalance status [--watch]
//	kvctl bench put|get|mixed
//	kvctl snapshot save|status|restore FILE   # backup and restore
//	kvctl auth enable|disable|status
//	kvctl user add|delete|list|grant-role|revoke-role
//	kvctl role add|delete|list|grant|revoke
//	kvctl certs create                        # a test CA and certificates
//	kvctl completion bash|zsh|fish|powershell
//
// Global flags: --endpoints (default $KVCTL_ENDPOINTS, else the local
// cluster of `make run`), --cacert/--cert/--key (TLS), --user
// NAME[:PASSWORD] or --token (auth), -o table|json, --timeout (of the whole command;
// node remove has its own, default 10m, and a watch or a benchmark bounds
// only each request by it, a scan each page). Errors go to stderr, prefixed
// "Error: ", and the exit code is 1; so does a conditional write whose
// condition failed ("condition failed: current version N").
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
