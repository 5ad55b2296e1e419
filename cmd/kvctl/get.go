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
// TTLMs is the key's time left to live in milliseconds, left out when it has
// no TTL.
type getJSON struct {
	Key           string `json:"key"`
	KeyEncoding   string `json:"key_encoding,omitempty"`
	Value         string `json:"value"`
	ValueEncoding string `json:"value_encoding,omitempty"`
	Version       uint64 `json:"version"`
	CreateVersion uint64 `json:"create_version"`
	TTLMs         int64  `json:"ttl_ms,omitempty"`
}

func newGetJSON(key []byte, v client.Value) getJSON {
	j := getJSON{Version: v.Version, CreateVersion: v.CreateVersion, TTLMs: v.TTL.Milliseconds()}
	j.Key, j.KeyEncoding = jsonBytes(key)
	j.Value, j.ValueEncoding = jsonBytes(v.Data)
	return j
}

// getKey reads key; a missing key is an error that names it.
func getKey(ctx context.Context, c *client.Client, key []byte) (client.Value, error) {
	v, err := c.Get(ctx, key)
	if errors.Is(err, client.ErrNotFound) {
		return v, fmt.Errorf("key %q not found", key)
	}
	return v, err
}

func newGetCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "get KEY",
		Short: "Print the value of a key",
		Long: "Print the value of KEY as is, followed by a newline. A missing key is an error.\n" +
			"When KEY has a TTL, the time it has left is printed too, on stderr, as\n" +
			"\"ttl: 29.5s\", so that stdout stays the value as is.\n\n" +
			"With -o json, print {\"key\",\"value\",\"version\",\"create_version\",\"ttl_ms\"}\n" +
			"(\"ttl_ms\" only when KEY has a TTL); a key or value that is not valid UTF-8 is\n" +
			"base64-encoded, and \"key_encoding\" or \"value_encoding\" is then \"base64\".",
		Example: "  kvctl get greeting\n  kvctl -o json get greeting",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key := []byte(args[0])
			return a.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				v, err := getKey(ctx, c, key)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if a.output == outputJSON {
					return writeJSON(out, newGetJSON(key, v))
				}
				if _, err := out.Write(v.Data); err != nil {
					return err
				}
				if _, err = fmt.Fprintln(out); err != nil {
					return err
				}
				if v.TTL > 0 {
					_, err = fmt.Fprintf(cmd.ErrOrStderr(), "ttl: %s\n", formatTTL(v.TTL))
				}
				return err
			})
		},
	}
}
