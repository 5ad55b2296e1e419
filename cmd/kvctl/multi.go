package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ringkv/ringkv/client"
)

// mgetJSON is one line of mget's JSON output: get's, with Found; a missing
// key has only Found and its key.
type mgetJSON struct {
	Found         bool    `json:"found"`
	Key           string  `json:"key"`
	KeyEncoding   string  `json:"key_encoding,omitempty"`
	Value         *string `json:"value,omitempty"`
	ValueEncoding string  `json:"value_encoding,omitempty"`
	Version       uint64  `json:"version,omitempty"`
	CreateVersion uint64  `json:"create_version,omitempty"`
	TTLMs         int64   `json:"ttl_ms,omitempty"`
}

func newMGetCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "mget KEY...",
		Short: "Print the values of several keys",
		Long: "Read every KEY, each shard's keys in one request, the shards in parallel, and\n" +
			"print one line per KEY, in the order given: \"KEY VALUE\", or \"KEY (not found)\".\n" +
			"Each key's read is linearizable, but keys of different shards are not read\n" +
			"at one instant. A key or value that holds control characters (a newline, ...)\n" +
			"or is not valid UTF-8 is printed quoted, as a Go string.\n\n" +
			"When a key is missing, kvctl prints the others, then exits 1 with\n" +
			"\"N of M keys not found\".\n\n" +
			"With -o json, print one JSON object per line (JSON lines), per KEY:\n" +
			"{\"found\",\"key\",\"value\",\"version\",\"create_version\",\"ttl_ms\"}, as get prints\n" +
			"them, with \"found\":false and no value for a missing key.",
		Example: "  kvctl mget {user1}.balance {user1}.history\n  kvctl -o json mget a b c",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			keys := make([][]byte, len(args))
			for i, k := range args {
				keys[i] = []byte(k)
			}
			return a.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				kvs, err := c.MultiGet(ctx, keys)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				missing := 0
				for i, kv := range kvs {
					if !kv.Found {
						missing++
					}
					if a.output == outputJSON {
						j := mgetJSON{Found: kv.Found}
						j.Key, j.KeyEncoding = jsonBytes(keys[i])
						if kv.Found {
							g := newGetJSON(keys[i], kv.Value)
							j.Value, j.ValueEncoding = &g.Value, g.ValueEncoding
							j.Version, j.CreateVersion, j.TTLMs = g.Version, g.CreateVersion, g.TTLMs
						}
						err = writeJSON(out, j)
					} else if kv.Found {
						_, err = fmt.Fprintf(out, "%s %s\n", plain(keys[i]), plain(kv.Data))
					} else {
						_, err = fmt.Fprintf(out, "%s (not found)\n", plain(keys[i]))
					}
					if err != nil {
						return err
					}
				}
				if missing > 0 {
					return fmt.Errorf("%d of %s not found", missing, count(len(keys), "key"))
				}
				return nil
			})
		},
	}
}

// parsePairs parses mput's KEY=VALUE arguments: the key is what comes before
// the first '=', so it cannot hold one; the value may be empty.
func parsePairs(args []string) (keys, values [][]byte, err error) {
	seen := map[string]bool{}
	for _, arg := range args {
		k, v, ok := strings.Cut(arg, "=")
		if !ok {
			return nil, nil, fmt.Errorf("argument %q: want KEY=VALUE", arg)
		}
		if k == "" {
			return nil, nil, fmt.Errorf("argument %q: the key is empty", arg)
		}
		if seen[k] {
			return nil, nil, fmt.Errorf("key %q given twice", k)
		}
		seen[k] = true
		keys, values = append(keys, []byte(k)), append(values, []byte(v))
	}
	if len(keys) == 0 {
		return nil, nil, errors.New("no KEY=VALUE given")
	}
	return keys, values, nil
}

// mputJSON is mput's JSON output.
type mputJSON struct {
	Versions []mputVersionJSON `json:"versions"`
}

type mputVersionJSON struct {
	Key         string `json:"key"`
	KeyEncoding string `json:"key_encoding,omitempty"`
	Version     uint64 `json:"version"`
}

func newMPutCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "mput KEY=VALUE...",
		Short: "Set the values of several keys",
		Long: "Set each KEY to its VALUE and print OK (json: {\"versions\":[{\"key\",\"version\"},...]},\n" +
			"in the order given). A KEY is what comes before the first '=' of its argument,\n" +
			"so it cannot hold one; VALUE may be empty (\"k=\").\n\n" +
			"Each shard's keys are written atomically in one request, the shards in\n" +
			"parallel: the write is NOT atomic across shards, and on an error some shards\n" +
			"may have applied theirs. Keys with a common hash tag (\"{user1}.a\",\n" +
			"\"{user1}.b\") are on one shard.",
		Example: "  kvctl mput a=1 b=2 c=3\n  kvctl mput {user1}.balance=100 {user1}.history=",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			keys, values, err := parsePairs(args)
			if err != nil {
				return err
			}
			return a.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				versions, err := c.MultiPut(ctx, keys, values)
				if err != nil {
					return err
				}
				if a.output == outputJSON {
					j := mputJSON{Versions: make([]mputVersionJSON, len(keys))}
					for i, v := range versions {
						j.Versions[i].Key, j.Versions[i].KeyEncoding = jsonBytes(keys[i])
						j.Versions[i].Version = v
					}
					return writeJSON(cmd.OutOrStdout(), j)
				}
				_, err = fmt.Fprintln(cmd.OutOrStdout(), "OK")
				return err
			})
		},
	}
}
