package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ringkv/ringkv/client"
	"github.com/ringkv/ringkv/shard"
)

// watchFlags are kvctl watch's own flags.
type watchFlags struct {
	prefix       bool
	after        []string
	afterVersion uint64
	progress     bool
}

// watchJSON is one line of watch's JSON output.
type watchJSON struct {
	Type          string  `json:"type"`
	Key           string  `json:"key,omitempty"`
	KeyEncoding   string  `json:"key_encoding,omitempty"`
	Value         *string `json:"value,omitempty"`
	ValueEncoding string  `json:"value_encoding,omitempty"`
	Version       uint64  `json:"version"`
	CreateVersion uint64  `json:"create_version,omitempty"`
	Shard         uint32  `json:"shard"`
}

func newWatchCommand(a *app) *cobra.Command {
	f := watchFlags{}
	cmd := &cobra.Command{
		Use:   "watch KEY | watch --prefix PREFIX",
		Short: "Print every change of a key or of the keys with a prefix, as it happens",
		Long: "Print every put and delete of KEY (with --prefix, of every key that starts\n" +
			"with PREFIX; an empty prefix watches every key) as it happens, until Ctrl-C:\n" +
			"\"PUT KEY VALUE\" or \"DELETE KEY\" (an expired TTL is a DELETE). Changes come\n" +
			"in order per key; keys of different shards are not ordered with each other.\n" +
			"The watch rides out node deaths, leader changes and shard moves without\n" +
			"losing or repeating a change. --timeout bounds only connecting.\n\n" +
			"Each change has a version (the Raft index of its shard's log) and a shard;\n" +
			"-o json prints one JSON object per change and line with both:\n" +
			"{\"type\",\"key\",\"value\",\"version\",\"create_version\",\"shard\"}. To resume a\n" +
			"watch later without losing changes, pass the last version seen per shard\n" +
			"with --after SHARD=VERSION (repeatable), or for one key --after-version V\n" +
			"(the version of its last change or of a get). --progress also prints\n" +
			"{\"type\":\"progress\",\"shard\",\"version\"} lines, about once a second per\n" +
			"shard, so that positions kept for resuming stay recent. A watch that falls\n" +
			"behind the history nodes keep ends with an error.",
		Example: "  kvctl watch config/db\n" +
			"  kvctl watch --prefix jobs/\n" +
			"  kvctl -o json watch --prefix jobs/ --after 3=1207 --after 9=880",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key := []byte(args[0])
			if !f.prefix && len(key) == 0 {
				return errors.New("watch: KEY is empty (use --prefix \"\" to watch every key)")
			}
			start, err := parseAfter(f.after)
			if err != nil {
				return err
			}
			if f.afterVersion > 0 {
				if f.prefix {
					return errors.New("--after-version resumes a watch of one key; with --prefix use --after SHARD=VERSION")
				}
				start = nil // filled in once the shard count is known
			}
			return a.withClientWithin(cmd, 0, func(ctx context.Context, c *client.Client) error {
				if f.afterVersion > 0 {
					count, err := shardCount(ctx, a, c)
					if err != nil {
						return err
					}
					start = map[uint32]uint64{uint32(shard.Of(key, count)): f.afterVersion}
				}
				return a.watch(ctx, cmd, c, key, client.WatchOptions{Prefix: f.prefix, StartAfter: start, Progress: f.progress})
			})
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.prefix, "prefix", false, "watch every key that starts with the argument")
	fl.StringArrayVar(&f.after, "after", nil, "resume shard `SHARD=VERSION` after that version (repeatable)")
	fl.Uint64Var(&f.afterVersion, "after-version", 0, "resume a watch of one key after version `V`")
	fl.BoolVar(&f.progress, "progress", false, "also print progress lines (with -o json)")
	return cmd
}

// parseAfter parses --after SHARD=VERSION values.
func parseAfter(vals []string) (map[uint32]uint64, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	out := map[uint32]uint64{}
	for _, v := range vals {
		s, p, ok := strings.Cut(v, "=")
		sid, err1 := strconv.ParseUint(s, 10, 32)
		pos, err2 := strconv.ParseUint(p, 10, 64)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("--after %q: want SHARD=VERSION, two numbers, e.g. 3=1207", v)
		}
		out[uint32(sid)] = pos
	}
	return out, nil
}

// shardCount asks the cluster for its shard count.
func shardCount(ctx context.Context, a *app, c *client.Client) (uint32, error) {
	sctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	st, err := c.Status(sctx)
	if err != nil {
		return 0, err
	}
	return st.ShardCount, nil
}

func (a *app) watch(ctx context.Context, cmd *cobra.Command, c *client.Client, key []byte, opts client.WatchOptions) error {
	out := cmd.OutOrStdout()
	for ev, err := range c.Watch(ctx, key, opts) {
		if err != nil {
			return err
		}
		if a.output == outputJSON {
			j := watchJSON{Version: ev.Version, CreateVersion: ev.CreateVersion, Shard: ev.Shard}
			switch ev.Type {
			case client.EventPut:
				j.Type = "put"
				var v string
				v, j.ValueEncoding = jsonBytes(ev.Data)
				j.Value = &v
			case client.EventDelete:
				j.Type = "delete"
			default:
				j.Type = "progress"
			}
			if ev.Type != client.EventProgress {
				j.Key, j.KeyEncoding = jsonBytes(ev.Key)
			}
			if err := writeJSON(out, j); err != nil {
				return err
			}
			continue
		}
		var err error
		switch ev.Type {
		case client.EventPut:
			_, err = fmt.Fprintf(out, "PUT %s %s\n", plain(ev.Key), plain(ev.Data))
		case client.EventDelete:
			_, err = fmt.Fprintf(out, "DELETE %s\n", plain(ev.Key))
		}
		if err != nil {
			return err
		}
	}
	// The iterator ends without an error only when ctx ends: Ctrl-C.
	return nil
}
