package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/ringkv/ringkv/client"
)

func newCASCommand(a *app) *cobra.Command {
	f := writeFlags{}
	cmd := &cobra.Command{
		Use:   "cas KEY OLD NEW",
		Short: "Compare-and-swap: set a key to NEW only if its value is OLD",
		Long: "Set the value of KEY to NEW only if its current value is exactly OLD, and\n" +
			"print OK (json: {\"version\":N}). When the value differs, or KEY does not\n" +
			"exist, nothing is written and kvctl exits 1 with\n" +
			"\"condition failed: current version N\" (0 when KEY does not exist).\n\n" +
			"A NEW of - reads the new value from stdin, as is. --ttl makes KEY expire that\n" +
			"long after the write.",
		Example: "  kvctl cas config/mode blue green\n" +
			"  kvctl cas lock/job1 worker7 worker7 --ttl 30s   # renew a lease",
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := f.options(cmd)
			if err != nil {
				return err
			}
			key, old := []byte(args[0]), []byte(args[1])
			value, err := readValue(cmd, args[2])
			if err != nil {
				return err
			}
			return a.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				version, err := c.CompareAndSwap(ctx, key, old, value, opts...)
				if err != nil {
					return err
				}
				return a.printVersion(cmd, version)
			})
		},
	}
	cmd.Flags().DurationVar(&f.ttl, "ttl", 0, "expire the key this long after the write (e.g. 30s)")
	return cmd
}
