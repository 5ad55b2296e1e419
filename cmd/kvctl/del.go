package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ringkv/ringkv/client"
)

func newDelCommand(a *app) *cobra.Command {
	f := writeFlags{}
	cmd := &cobra.Command{
		Use:     "del KEY",
		Aliases: []string{"delete"},
		Short:   "Delete a key",
		Long: "Delete KEY and print the number of keys deleted: 1, or 0 if it did not exist\n" +
			"(json: {\"deleted\":true|false,\"version\":N}).\n\n" +
			"--if-version N deletes only if KEY's version is N. When it is not, nothing is\n" +
			"deleted and kvctl exits 1 with \"condition failed: current version N\" (0 when\n" +
			"KEY does not exist).",
		Example: "  kvctl del greeting\n" +
			"  kvctl del lock/job1 --if-version 57",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := f.options(cmd)
			if err != nil {
				return err
			}
			key := []byte(args[0])
			return a.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				deleted, version, err := c.Delete(ctx, key, opts...)
				if err != nil {
					return err
				}
				if a.output == outputJSON {
					return writeJSON(cmd.OutOrStdout(), struct {
						Deleted bool   `json:"deleted"`
						Version uint64 `json:"version"`
					}{deleted, version})
				}
				n := 0
				if deleted {
					n = 1
				}
				_, err = fmt.Fprintln(cmd.OutOrStdout(), n)
				return err
			})
		},
	}
	cmd.Flags().Uint64Var(&f.ifVersion, "if-version", 0, "delete only if the key's version is `N`")
	return cmd
}
