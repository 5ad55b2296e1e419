package main

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringkv/ringkv/pki"
)

func newCertsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Create a test CA and certificates for a TLS cluster",
	}
	var (
		dir      string
		spec     pki.Spec
		validity time.Duration
	)
	create := &cobra.Command{
		Use:   "create --dir DIR --nodes n1,n2,n3",
		Short: "Create a CA, a certificate per node and per client, for local use",
		Long: "Create, in DIR: ca.crt and ca.key, a new cluster CA; ID.crt and ID.key for each\n" +
			"node ID of --nodes, valid for the ID and each name or IP of --hosts, marked as\n" +
			"node certificates (URI SAN ringkv://node/ID); and NAME.crt and NAME.key for each\n" +
			"--clients name (ringkv://client/NAME). Keys are ECDSA P-256, written 0600.\n\n" +
			"Start each node with --cacert DIR/ca.crt --cert DIR/ID.crt --key DIR/ID.key, and\n" +
			"give kvctl --cacert DIR/ca.crt (and --cert/--key of a client certificate when\n" +
			"the cluster asks for one). Only node certificates may call the nodes' internal\n" +
			"services. For production, issue certificates with the same SANs from your PKI.",
		Example: "  kvctl certs create --dir certs --nodes n1,n2,n3 --clients admin",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return fmt.Errorf("--dir is required")
			}
			if len(spec.Nodes) == 0 {
				return fmt.Errorf("--nodes is required: the IDs of the nodes, e.g. n1,n2,n3")
			}
			spec.Validity = validity
			if err := pki.Create(dir, spec); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintln(out, filepath.Join(dir, "ca.crt"))
			for _, n := range append(append([]string{}, spec.Nodes...), spec.Clients...) {
				fmt.Fprintln(out, filepath.Join(dir, n+".crt"))
			}
			return nil
		},
	}
	fl := create.Flags()
	fl.StringVar(&dir, "dir", "", "write the files into `DIR` (created; must not hold a CA yet)")
	fl.StringSliceVar(&spec.Nodes, "nodes", nil, "node `IDs` to make certificates for")
	fl.StringSliceVar(&spec.Hosts, "hosts", []string{"localhost", "127.0.0.1"}, "DNS `names` and IPs every node certificate is valid for")
	fl.StringSliceVar(&spec.Clients, "clients", nil, "client `names` to make certificates for")
	fl.DurationVar(&validity, "validity", 365*24*time.Hour, "how long the certificates last")
	cmd.AddCommand(create)
	return cmd
}
