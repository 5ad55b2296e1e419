package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ringkv/ringkv/client"
)

// getJSON is the JSON output of get. Key and Value are strings when they are
// valid UTF-8, else base64, which KeyEncoding and ValueEncoding then say.
type getJSON struct {
	Key           string `json:"key"`
	KeyEncoding   string `json:"key_encoding,omitempty"`
	Value         string `json:"value"`
	ValueEncoding string `json:"value_encoding,omitempty"`
	Version       uint64 `json:"version"`
	CreateVersion uint64 `json:"create_version"`
}

func newGetCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "get KEY",
		Short: "Print the value of a key",
		Long: "Print the value of KEY as is, followed by a newline. A missing key is an error.\n\n" +
			"With -o json, print {\"key\",\"value\",\"version\",\"create_version\"}; a key or value\n" +
			"that is not valid UTF-8 is base64-encoded, and \"key_encoding\" or\n" +
			"\"value_encoding\" is then \"base64\".",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key := []byte(args[0])
			return a.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				v, err := c.Get(ctx, key)
				if errors.Is(err, client.ErrNotFound) {
					return fmt.Errorf("key %q not found", key)
				}
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if a.output == outputJSON {
					j := getJSON{Version: v.Version, CreateVersion: v.CreateVersion}
					j.Key, j.KeyEncoding = jsonBytes(key)
					j.Value, j.ValueEncoding = jsonBytes(v.Data)
					return writeJSON(out, j)
				}
				if _, err := out.Write(v.Data); err != nil {
					return err
				}
				_, err = fmt.Fprintln(out)
				return err
			})
		},
	}
}
