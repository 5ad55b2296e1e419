package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringkv/ringkv/client"
)

// maxPageSize is the largest page the nodes serve.
const maxPageSize = 10000

// scanFlags are kvctl scan's own flags.
type scanFlags struct {
	prefix   string
	limit    int
	keysOnly bool
	pageSize int
}

// scanJSON is one line of scan's JSON output. Value is left out with
// --keys-only.
type scanJSON struct {
	Key           string  `json:"key"`
	KeyEncoding   string  `json:"key_encoding,omitempty"`
	Value         *string `json:"value,omitempty"`
	ValueEncoding string  `json:"value_encoding,omitempty"`
	Version       uint64  `json:"version"`
	CreateVersion uint64  `json:"create_version"`
	TTLMs         int64   `json:"ttl_ms,omitempty"`
}

// errScanStalled ends a scan when a page takes longer than --timeout.
var errScanStalled = errors.New("scan stalled")

func newScanCommand(a *app) *cobra.Command {
	f := scanFlags{}
	cmd := &cobra.Command{
		Use:   "scan [--prefix P]",
		Short: "List the keys with a prefix, in key order",
		Long: "List the keys that start with --prefix (every key without it) in key order,\n" +
			"across all shards, one line per key: \"KEY VALUE\", or \"KEY\" with --keys-only.\n" +
			"A key or value that holds control characters (a newline, ...) or is not valid\n" +
			"UTF-8 is printed quoted, as a Go string.\n\n" +
			"Keys are printed as the pages of --page-size keys arrive (default: the\n" +
			"server's, 1000; at most 10000), never gathered first, so a scan of many keys\n" +
			"starts printing at once; --limit N stops after N keys. --timeout bounds each\n" +
			"page, not the whole scan. Each page is linearizable per shard; the scan as a\n" +
			"whole is not one snapshot: keys written while it runs may or may not appear.\n\n" +
			"With -o json, print one JSON object per key and line (JSON lines), as they\n" +
			"arrive: {\"key\",\"value\",\"version\",\"create_version\",\"ttl_ms\"} (no \"value\"\n" +
			"with --keys-only; \"ttl_ms\" only for a key with a TTL).",
		Example: "  kvctl scan --prefix user/\n" +
			"  kvctl scan --prefix {user1}. --keys-only\n" +
			"  kvctl scan --prefix logs/ --limit 10 --page-size 100\n" +
			"  kvctl -o json scan --prefix user/ | jq -r .value",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("scan takes no argument, got %q: give the prefix with --prefix", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.limit < 0 {
				return fmt.Errorf("--limit %d: must be >= 0 (0: no limit)", f.limit)
			}
			if f.pageSize < 0 || f.pageSize > maxPageSize {
				return fmt.Errorf("--page-size %d: want 1..%d (0: the server's default)", f.pageSize, maxPageSize)
			}
			return a.withClientWithin(cmd, 0, func(ctx context.Context, c *client.Client) error {
				return a.scan(ctx, cmd, c, f)
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.prefix, "prefix", "", "list the keys that start with `P` (default: every key)")
	fl.IntVar(&f.limit, "limit", 0, "print at most `N` keys (0: no limit)")
	fl.BoolVar(&f.keysOnly, "keys-only", false, "print the keys only, not their values")
	fl.IntVar(&f.pageSize, "page-size", 0, "fetch `N` keys per request (default: the server's, 1000)")
	return cmd
}

// scan prints the keys as they come. A watchdog bounds the wait for each
// key (so for each page) by --timeout; it does not run while kvctl writes,
// so a slow reader of the output does not end the scan.
func (a *app) scan(ctx context.Context, cmd *cobra.Command, c *client.Client, f scanFlags) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watchdog := time.AfterFunc(a.timeout, func() { cancel(errScanStalled) })
	defer watchdog.Stop()

	out := cmd.OutOrStdout()
	printed := 0
	opts := client.ScanOptions{PageSize: f.pageSize, KeysOnly: f.keysOnly}
	for kv, err := range c.Scan(ctx, []byte(f.prefix), opts) {
		watchdog.Stop()
		if err != nil {
			if errors.Is(context.Cause(ctx), errScanStalled) {
				return fmt.Errorf("scan: no page within --timeout %v after %s: %w", a.timeout, count(printed, "key"), err)
			}
			return err
		}
		if err := a.printScanned(out, kv, f.keysOnly); err != nil {
			return err
		}
		printed++
		if f.limit > 0 && printed >= f.limit {
			return nil
		}
		watchdog.Reset(a.timeout)
	}
	return nil
}

func (a *app) printScanned(out io.Writer, kv client.KeyValue, keysOnly bool) error {
	if a.output == outputJSON {
		j := scanJSON{Version: kv.Version, CreateVersion: kv.CreateVersion, TTLMs: kv.TTL.Milliseconds()}
		j.Key, j.KeyEncoding = jsonBytes(kv.Key)
		if !keysOnly {
			var v string
			v, j.ValueEncoding = jsonBytes(kv.Data)
			j.Value = &v
		}
		return writeJSON(out, j)
	}
	var err error
	if keysOnly {
		_, err = fmt.Fprintln(out, plain(kv.Key))
	} else {
		_, err = fmt.Fprintf(out, "%s %s\n", plain(kv.Key), plain(kv.Data))
	}
	return err
}
