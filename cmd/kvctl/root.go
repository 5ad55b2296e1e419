package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"

	"github.com/ringkv/ringkv/client"
	"github.com/ringkv/ringkv/pki"
)

const (
	// defaultEndpoints are the nodes of the local cluster `make run` starts.
	defaultEndpoints = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"
	// endpointsEnv names the environment variable that overrides
	// defaultEndpoints; the --endpoints flag overrides both.
	endpointsEnv = "KVCTL_ENDPOINTS"
	// defaultTimeout bounds a whole command: connecting, retries, output.
	defaultTimeout = 5 * time.Second
)

// Output formats of -o.
const (
	outputTable = "table"
	outputJSON  = "json"
)

// run runs kvctl with args (without the program name) and returns its exit
// code: 0 on success, 1 on any error, which it reports on stderr.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCommand(os.LookupEnv)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		// cobra has printed "Error: ..."; the request ID of a call that
		// failed finds it in the nodes' logs.
		if id := client.TraceIDOf(err); id != "" {
			fmt.Fprintf(stderr, "Request ID: %s\n", id)
		}
		return 1
	}
	return 0
}

// app holds the global flags, which every command reads.
type app struct {
	lookupEnv func(string) (string, bool)

	endpoints []string
	output    string
	timeout   time.Duration
	tls       pki.Files
	// user (NAME[:PASSWORD]) and token are the credentials of --user and
	// --token (see auth.go); stdin and stderr serve the password prompt.
	user, token string
	stdin       io.Reader
	stderr      io.Writer
}

// clientOptions are the client library options the global flags ask for.
func (a *app) clientOptions() ([]client.Option, error) {
	opts, err := a.authOptions()
	if err != nil || !a.tls.Enabled() {
		return opts, err
	}
	cfg, err := a.tls.ClientConfig()
	if err != nil {
		return nil, err
	}
	return append(opts, client.WithTLS(cfg)), nil
}

// newClient connects to the cluster with the global flags.
func (a *app) newClient(ctx context.Context) (*client.Client, error) {
	opts, err := a.clientOptions()
	if err != nil {
		return nil, err
	}
	return client.New(ctx, a.resolveEndpoints(), opts...)
}

// newRootCommand builds kvctl's command tree. lookupEnv reads the
// environment (os.LookupEnv).
func newRootCommand(lookupEnv func(string) (string, bool)) *cobra.Command {
	a := &app{lookupEnv: lookupEnv}
	root := &cobra.Command{
		Use:   "kvctl",
		Short: "kvctl talks to a ringkv cluster",
		Long: "kvctl reads and writes keys of a ringkv cluster, shows its status and placement,\n" +
			"and removes nodes from it.\n\n" +
			"The cluster is reached through --endpoints, else $" + endpointsEnv +
			" (comma-separated host:port), else " + defaultEndpoints + ".",
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			// The command line parsed: from here on, errors are not
			// usage errors, so don't print the usage with them.
			cmd.SilenceUsage = true
			a.stdin, a.stderr = cmd.InOrStdin(), cmd.ErrOrStderr()
			if a.output != outputTable && a.output != outputJSON {
				return fmt.Errorf("unknown output format %q: want %s or %s", a.output, outputTable, outputJSON)
			}
			if a.timeout <= 0 {
				return fmt.Errorf("--timeout %v: must be > 0", a.timeout)
			}
			return nil
		},
	}
	flags := root.PersistentFlags()
	flags.StringSliceVar(&a.endpoints, "endpoints", nil,
		"comma-separated gRPC addresses (host:port) of cluster nodes (default $"+endpointsEnv+", else "+defaultEndpoints+")")
	flags.StringVarP(&a.output, "output", "o", outputTable, "output format: "+outputTable+" or "+outputJSON)
	flags.DurationVar(&a.timeout, "timeout", defaultTimeout, "timeout of the whole command")
	flags.StringVar(&a.tls.CA, "cacert", "", "verify the nodes with the cluster CA certificate in `FILE` (turns TLS on)")
	flags.StringVar(&a.tls.Cert, "cert", "", "present the client certificate in `FILE` (with --key)")
	flags.StringVar(&a.tls.Key, "key", "", "the private key of --cert, in `FILE`")
	flags.StringVar(&a.user, "user", "", "authenticate as `NAME[:PASSWORD]` (asks for the password when it is left out; needs TLS)")
	flags.StringVar(&a.token, "token", "", "authenticate with the static `TOKEN` of a user (needs TLS)")

	root.AddCommand(
		newPutCommand(a),
		newGetCommand(a),
		newDelCommand(a),
		newCASCommand(a),
		newTTLCommand(a),
		newTxnCommand(a),
		newMGetCommand(a),
		newMPutCommand(a),
		newScanCommand(a),
		newWatchCommand(a),
		newClusterCommand(a),
		newRingCommand(a),
		newNodeCommand(a),
		newRebalanceCommand(a),
		newBenchCommand(a),
		newCertsCommand(),
		newSnapshotCommand(a),
		newAuthCommand(a),
		newUserCommand(a),
		newRoleCommand(a),
	)
	return root
}

// resolveEndpoints returns the endpoints to use: --endpoints, else the
// environment, else the default.
func (a *app) resolveEndpoints() []string {
	if len(a.endpoints) > 0 {
		return a.endpoints
	}
	list := defaultEndpoints
	if env, ok := a.lookupEnv(endpointsEnv); ok && strings.TrimSpace(env) != "" {
		list = env
	}
	var out []string
	for _, e := range strings.Split(list, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// withClient connects to the cluster and runs f, all within the timeout.
func (a *app) withClient(cmd *cobra.Command, f func(ctx context.Context, c *client.Client) error) error {
	return a.withClientWithin(cmd, a.timeout, f)
}

// withClientWithin connects to the cluster within the timeout and runs f,
// all within limit; a limit of 0 sets none, so f must bound its own calls.
func (a *app) withClientWithin(cmd *cobra.Command, limit time.Duration, f func(ctx context.Context, c *client.Client) error) error {
	ctx := cmd.Context()
	if limit > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, limit)
		defer cancel()
	}
	connectCtx, cancel := context.WithTimeout(ctx, a.timeout)
	c, err := a.newClient(connectCtx)
	cancel()
	if err != nil {
		return a.hintTLS(err)
	}
	// Every call of the command carries one request ID, which run shows
	// with an error of the cluster (unavailable, timed out, overloaded,
	// internal): it finds the command's calls in the nodes' logs. An
	// answer about the request itself (not found, invalid, condition
	// failed: explain drops the call's error) shows none.
	id := client.NewTraceID()
	err = f(client.WithTraceID(ctx, id), c)
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	return a.hintTLS(explain(err))
}

// hintTLS adds a hint to err when a plaintext kvctl seems to have reached
// nodes that serve TLS.
func (a *app) hintTLS(err error) error {
	if err != nil && !a.tls.Enabled() && strings.Contains(err.Error(), "server preface") {
		return fmt.Errorf("%w\n(the nodes may be serving TLS: pass --cacert with the cluster's CA certificate)", err)
	}
	return err
}

// conditionFailed is the error kvctl reports for a conditional write whose
// condition did not hold.
func conditionFailed(ce *client.ConditionError) error {
	if ce.Version == 0 {
		return errors.New("condition failed: current version 0 (the key does not exist)")
	}
	return fmt.Errorf("condition failed: current version %d", ce.Version)
}

// explain makes err fit for a user: a conditional write whose condition did
// not hold is reported as "condition failed: current version N"; a request a
// node refused because of the request itself or of the cluster's state is
// reported with the node's own message, which says what was wrong.
func explain(err error) error {
	var ce *client.ConditionError
	if errors.As(err, &ce) {
		return conditionFailed(ce)
	}
	var se *client.ServerError
	if !errors.As(err, &se) || se.Message == "" {
		return err
	}
	switch se.Code {
	case codes.InvalidArgument, codes.FailedPrecondition, codes.NotFound, codes.AlreadyExists:
		return errors.New(se.Message)
	}
	return err
}
