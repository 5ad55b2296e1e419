package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringkv/ringkv/client"
)

// formatTTL returns d, a time left to live, to a tenth of a second from a
// second up ("29.5s", "1m30s"), to the millisecond below ("250ms").
func formatTTL(d time.Duration) string {
	if d >= time.Second {
		d = d.Round(100 * time.Millisecond)
	}
	return d.String()
}

// ttlJSON is the JSON output of ttl. TTLMs is 0 when the key has no TTL.
type ttlJSON struct {
	Key         string `json:"key"`
	KeyEncoding string `json:"key_encoding,omitempty"`
	HasTTL      bool   `json:"has_ttl"`
	TTLMs       int64  `json:"ttl_ms"`
}

func newTTLCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "ttl KEY",
		Short: "Print the time a key has left to live",
		Long: "Print the time KEY has left before it expires (29.5s, 4m59.9s), or \"no ttl\"\n" +
			"when it has none. A missing key is an error, as for get.\n\n" +
			"With -o json, print {\"key\",\"has_ttl\",\"ttl_ms\"}.\n\n" +
			"Give a key a TTL with kvctl put KEY VALUE --ttl 30s.",
		Example: "  kvctl put session/42 alice --ttl 30s\n  kvctl ttl session/42",
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
					j := ttlJSON{HasTTL: v.TTL > 0, TTLMs: v.TTL.Milliseconds()}
					j.Key, j.KeyEncoding = jsonBytes(key)
					return writeJSON(out, j)
				}
				if v.TTL <= 0 {
					_, err = fmt.Fprintln(out, "no ttl")
					return err
				}
				_, err = fmt.Fprintln(out, formatTTL(v.TTL))
				return err
			})
		},
	}
}
