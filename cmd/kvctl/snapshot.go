package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringkv/ringkv/backup"
	"github.com/ringkv/ringkv/client"
)

func newSnapshotCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Back up a cluster to a file, check a backup, restore one into a cluster",
		Long: "save writes every key of the cluster, with its value and remaining TTL, to one\n" +
			"file; status checks a file and describes it, without a cluster; restore loads a\n" +
			"file into an empty cluster, which may have another shard count.\n\n" +
			"Each shard is saved as of one linearizable instant, taken on its leader; the\n" +
			"shards are saved one after another, not at one instant, and writes go on\n" +
			"meanwhile. Restored keys get new versions; a key's TTL is what it had left\n" +
			"when it was saved, counted again from the restore. Event history and client\n" +
			"sessions are not saved.\n\n" +
			"save and restore run until done (Ctrl-C stops them); --timeout bounds\n" +
			"connecting.",
	}
	cmd.AddCommand(newSnapshotSaveCommand(a), newSnapshotStatusCommand(a), newSnapshotRestoreCommand(a))
	return cmd
}

func newSnapshotSaveCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "save FILE",
		Short: "Save every key of the cluster to FILE",
		Long: "Save every shard of the cluster to FILE: its keys, values and remaining TTLs\n" +
			"as of one linearizable instant of the shard. The file is written to FILE.part,\n" +
			"synced and renamed to FILE only when complete; FILE must not exist. Progress\n" +
			"goes to stderr, one line per shard.",
		Example: "  kvctl snapshot save backup-$(date +%F).rkv",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			if _, err := os.Stat(path); err == nil {
				return fmt.Errorf("%s exists; remove it or save to another file", path)
			}
			return a.withClientWithin(cmd, 0, func(ctx context.Context, c *client.Client) error {
				start := time.Now()
				progress := func(p client.SaveProgress) {
					fmt.Fprintf(cmd.ErrOrStderr(), "saved shard %d/%d: %s (%s, %s so far)\n",
						p.Shard+1, p.Shards, count(int(p.ShardRecords), "key"), count(int(p.Records), "key"), humanBytes(uint64(p.Bytes)))
				}
				sum, err := saveFile(ctx, c, path, progress)
				if err != nil {
					return err
				}
				if a.output == outputJSON {
					return writeJSON(cmd.OutOrStdout(), newSnapshotJSON(path, sum))
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "saved %s of %s (%s) to %s in %v\n",
					count(int(sum.Records), "key"), count(int(sum.ShardCount), "shard"), humanBytes(uint64(sum.FileBytes)),
					path, time.Since(start).Round(time.Millisecond))
				return err
			})
		},
	}
}

// saveFile saves the cluster to path.part, syncs it and renames it to path.
// On failure it removes path.part.
func saveFile(ctx context.Context, c *client.Client, path string, progress func(client.SaveProgress)) (sum *backup.Summary, err error) {
	part := path + ".part"
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(part)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	if sum, err = c.SaveSnapshot(ctx, bw, progress); err != nil {
		return nil, err
	}
	if err = bw.Flush(); err != nil {
		return nil, err
	}
	if err = f.Sync(); err != nil {
		return nil, err
	}
	if err = f.Close(); err != nil {
		return nil, err
	}
	if err = os.Rename(part, path); err != nil {
		return nil, err
	}
	// Make the rename durable too.
	if d, derr := os.Open(filepath.Dir(path)); derr == nil {
		d.Sync()
		d.Close()
	}
	return sum, nil
}

// snapshotJSON is the JSON output of snapshot save and status.
type snapshotJSON struct {
	File       string              `json:"file"`
	Format     int                 `json:"format"`
	Created    time.Time           `json:"created"`
	ShardCount uint32              `json:"shard_count"`
	Keys       uint64              `json:"keys"`
	DataBytes  uint64              `json:"data_bytes"`
	FileBytes  int64               `json:"file_bytes"`
	SHA256     string              `json:"sha256"`
	Shards     []snapshotShardJSON `json:"shards,omitempty"`
}

type snapshotShardJSON struct {
	Shard     uint32    `json:"shard"`
	Index     uint64    `json:"index"`
	TakenAt   time.Time `json:"taken_at"`
	Keys      uint64    `json:"keys"`
	DataBytes uint64    `json:"data_bytes"`
	CRC32C    string    `json:"crc32c"`
}

func newSnapshotJSON(path string, s *backup.Summary) snapshotJSON {
	j := snapshotJSON{File: path, Format: s.Version, Created: s.Created.UTC(), ShardCount: s.ShardCount,
		Keys: s.Records, DataBytes: s.Bytes, FileBytes: s.FileBytes, SHA256: hex.EncodeToString(s.SHA256[:])}
	for _, sh := range s.Shards {
		j.Shards = append(j.Shards, snapshotShardJSON{Shard: sh.ID, Index: sh.Index, TakenAt: sh.TakenAt.UTC(),
			Keys: sh.Records, DataBytes: sh.Bytes, CRC32C: fmt.Sprintf("%08x", sh.CRC)})
	}
	return j
}

func newSnapshotStatusCommand(a *app) *cobra.Command {
	var shards bool
	cmd := &cobra.Command{
		Use:   "status FILE",
		Short: "Check a backup file and describe it",
		Long: "Read FILE whole, verify every checksum and count, and print its shards, keys and\n" +
			"bytes (with --shards, a line per shard). A truncated, damaged or foreign file is\n" +
			"an error that says where and what. Needs no cluster.",
		Example: "  kvctl snapshot status backup.rkv --shards",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sum, err := verifyFile(args[0])
			if err != nil {
				return err
			}
			j := newSnapshotJSON(args[0], sum)
			out := cmd.OutOrStdout()
			if a.output == outputJSON {
				return writeJSON(out, j)
			}
			w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "file\t%s\n", j.File)
			fmt.Fprintf(w, "format\t%d\n", j.Format)
			fmt.Fprintf(w, "created\t%s\n", j.Created.Format(time.RFC3339))
			fmt.Fprintf(w, "shards\t%d\n", j.ShardCount)
			fmt.Fprintf(w, "keys\t%d\n", j.Keys)
			fmt.Fprintf(w, "data\t%s\n", humanBytes(j.DataBytes))
			fmt.Fprintf(w, "size\t%s\n", humanBytes(uint64(j.FileBytes)))
			fmt.Fprintf(w, "sha256\t%s\n", j.SHA256)
			fmt.Fprintf(w, "checksums\tok\n")
			if err := w.Flush(); err != nil {
				return err
			}
			if !shards {
				return nil
			}
			fmt.Fprintln(out)
			w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "SHARD\tINDEX\tKEYS\tDATA\tCRC32C\tTAKEN\n")
			for _, s := range j.Shards {
				fmt.Fprintf(w, "%d\t%d\t%d\t%s\t%s\t%s\n", s.Shard, s.Index, s.Keys, humanBytes(s.DataBytes), s.CRC32C,
					s.TakenAt.Format(time.RFC3339Nano))
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&shards, "shards", false, "also print a line per shard")
	return cmd
}

// verifyFile verifies the backup file at path.
func verifyFile(path string) (*backup.Summary, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sum, err := backup.Verify(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return sum, nil
}

func newSnapshotRestoreCommand(a *app) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Load a backup file into an empty cluster",
		Long: "Verify FILE whole, then write its keys into the cluster (--endpoints), each with\n" +
			"its value and the TTL it had left when saved. Keys go to their shards under the\n" +
			"cluster's own shard map, so its shard count may differ from the source's.\n" +
			"Nothing is written from a file that does not verify. The cluster must hold no\n" +
			"key, unless --force: then the file's keys are written over it and other keys\n" +
			"stay. A restore that failed midway is finished by running it again with\n" +
			"--force. Progress goes to stderr.",
		Example: "  kvctl --endpoints 10.0.0.1:7001 snapshot restore backup.rkv",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			return a.withClientWithin(cmd, 0, func(ctx context.Context, c *client.Client) error {
				start := time.Now()
				var last time.Time
				var lastTenth uint64
				progress := func(p client.RestoreProgress) {
					if p.Total == 0 {
						return
					}
					// A line per tenth of the keys, or per second if slower.
					tenth := p.Written * 10 / p.Total
					if tenth == lastTenth && time.Since(last) < time.Second && p.Written < p.Total {
						return
					}
					lastTenth, last = tenth, time.Now()
					fmt.Fprintf(cmd.ErrOrStderr(), "restored %d of %d keys\n", p.Written, p.Total)
				}
				st, err := c.Status(ctx)
				if err != nil {
					return err
				}
				sum, err := c.RestoreSnapshot(ctx, f, client.RestoreOptions{Force: force, Progress: progress})
				if errors.Is(err, backup.ErrCorrupt) || errors.Is(err, backup.ErrNotBackup) || errors.Is(err, backup.ErrVersion) {
					return fmt.Errorf("%s: %w", path, err)
				}
				if errors.Is(err, client.ErrNotEmpty) {
					return fmt.Errorf("%w; restore only into an empty cluster, or pass --force to write the file's keys over "+
						"the cluster's (as to finish a restore that failed midway)", err)
				}
				if err != nil {
					return err
				}
				if a.output == outputJSON {
					return writeJSON(cmd.OutOrStdout(), newSnapshotJSON(path, sum))
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "restored %s from %s (saved from %s) into a cluster of %s in %v\n",
					count(int(sum.Records), "key"), path, count(int(sum.ShardCount), "shard"),
					count(int(st.ShardCount), "shard"), time.Since(start).Round(time.Millisecond))
				return err
			})
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "restore into a cluster that holds keys, writing the file's keys over them")
	return cmd
}
