package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ringkv/ringkv/client"
)

func newDelCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "del KEY",
		Aliases: []string{"delete"},
		Short:   "Delete a key",
		Long: "Delete KEY and print the number of keys deleted: 1, or 0 if it did not exist\n" +
			"(json: {\"deleted\":true|false,\"version\":N}).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key := []byte(args[0])
			return a.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				deleted, version, err := c.Delete(ctx, key)
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
}
