package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringkv/ringkv/client"
)

// writeFlags are the conditions and TTL of put, del and cas.
type writeFlags struct {
	ifAbsent  bool
	ifVersion uint64
	ttl       time.Duration
}

// options returns the client options that the flags given to cmd ask for.
func (f *writeFlags) options(cmd *cobra.Command) ([]client.WriteOption, error) {
	fl := cmd.Flags()
	var opts []client.WriteOption
	if fl.Changed("if-absent") && f.ifAbsent {
		opts = append(opts, client.IfAbsent(true))
	}
	if fl.Changed("if-version") {
		opts = append(opts, client.IfVersion(f.ifVersion))
	}
	if fl.Changed("ttl") {
		if f.ttl <= 0 {
			return nil, fmt.Errorf("--ttl %v: must be > 0", f.ttl)
		}
		opts = append(opts, client.WithTTL(f.ttl))
	}
	return opts, nil
}

// readValue returns arg as the value, or stdin's content, as is, for "-".
func readValue(cmd *cobra.Command, arg string) ([]byte, error) {
	if arg != "-" {
		return []byte(arg), nil
	}
	value, err := io.ReadAll(cmd.InOrStdin())
	if err != nil {
		return nil, fmt.Errorf("read value from stdin: %w", err)
	}
	return value, nil
}

// printVersion prints a write's outcome: OK (json: {"version":N}).
func (a *app) printVersion(cmd *cobra.Command, version uint64) error {
	if a.output == outputJSON {
		return writeJSON(cmd.OutOrStdout(), struct {
			Version uint64 `json:"version"`
		}{version})
	}
	_, err := fmt.Fprintln(cmd.OutOrStdout(), "OK")
	return err
}

func newPutCommand(a *app) *cobra.Command {
	f := writeFlags{}
	cmd := &cobra.Command{
		Use:   "put KEY VALUE",
		Short: "Set the value of a key",
		Long: "Set the value of KEY to VALUE and print OK (json: {\"version\":N}).\n\n" +
			"A VALUE of - reads the value from stdin, as is: a trailing newline is kept.\n\n" +
			"--if-absent writes only if KEY does not exist; --if-version N only if KEY's\n" +
			"version (kvctl -o json get KEY shows it) is N, 0 meaning that KEY does not\n" +
			"exist. When the condition does not hold nothing is written, and kvctl exits 1\n" +
			"with \"condition failed: current version N\".\n\n" +
			"--ttl makes KEY expire that long after the write (30s, 5m, 1h); a put without\n" +
			"--ttl leaves KEY without one.",
		Example: "  kvctl put greeting hello\n" +
			"  date | kvctl put now -\n" +
			"  kvctl put lock/job1 worker7 --if-absent --ttl 30s\n" +
			"  kvctl put counter 2 --if-version 41",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := f.options(cmd)
			if err != nil {
				return err
			}
			key := []byte(args[0])
			value, err := readValue(cmd, args[1])
			if err != nil {
				return err
			}
			return a.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				version, err := c.Put(ctx, key, value, opts...)
				if err != nil {
					return err
				}
				return a.printVersion(cmd, version)
			})
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.ifAbsent, "if-absent", false, "write only if the key does not exist")
	fl.Uint64Var(&f.ifVersion, "if-version", 0, "write only if the key's version is `N` (0: the key does not exist)")
	fl.DurationVar(&f.ttl, "ttl", 0, "expire the key this long after the write (e.g. 30s)")
	cmd.MarkFlagsMutuallyExclusive("if-absent", "if-version")
	return cmd
}
