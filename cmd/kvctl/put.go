package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/ringkv/ringkv/client"
)

func newPutCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "put KEY VALUE",
		Short: "Set the value of a key",
		Long: "Set the value of KEY to VALUE and print OK (json: {\"version\":N}).\n\n" +
			"A VALUE of - reads the value from stdin, as is: a trailing newline is kept.",
		Example: "  kvctl put greeting hello\n  date | kvctl put now -",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, value := []byte(args[0]), []byte(args[1])
			if args[1] == "-" {
				var err error
				if value, err = io.ReadAll(cmd.InOrStdin()); err != nil {
					return fmt.Errorf("read value from stdin: %w", err)
				}
			}
			return a.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				version, err := c.Put(ctx, key, value)
				if err != nil {
					return err
				}
				if a.output == outputJSON {
					return writeJSON(cmd.OutOrStdout(), struct {
						Version uint64 `json:"version"`
					}{version})
				}
				_, err = fmt.Fprintln(cmd.OutOrStdout(), "OK")
				return err
			})
		},
	}
}
