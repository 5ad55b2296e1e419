package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringkv/ringkv/client"
)

// progressWidth is the number of characters between the brackets of the
// progress bar.
const progressWidth = 20

// rebalanceFlags are kvctl rebalance status's own flags.
type rebalanceFlags struct {
	watch    bool
	interval time.Duration
	finished int
}

func newRebalanceCommand(a *app) *cobra.Command {
	rebalance := &cobra.Command{
		Use:   "rebalance",
		Short: "Follow the moves of shard replicas between nodes",
	}
	rebalance.AddCommand(newRebalanceStatusCommand(a))
	return rebalance
}

func newRebalanceStatusCommand(a *app) *cobra.Command {
	f := rebalanceFlags{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the pending, active and finished replica moves",
		Long: "Show how far the cluster is from its target placement: the number of moves\n" +
			"pending, active and finished since the target last changed (a node joined or\n" +
			"started draining), the snapshot data they sent, a progress bar, the active\n" +
			"moves (shard, from→to, phase, when it started, bytes sent) and the last\n" +
			"--finished finished ones, each aborted one with its reason.\n\n" +
			"With --watch, refresh every --interval until no move is pending or active.\n" +
			"On a terminal the view is redrawn; otherwise each refresh prints one line,\n" +
			"the progress bar. --timeout then bounds connecting and each refresh, not\n" +
			"the whole watch; Ctrl-C ends it.\n\n" +
			"-o json prints the whole status, every finished move the node keeps, as one\n" +
			"JSON object; with --watch, one object per line per refresh.",
		Example: "  kvctl rebalance status\n" +
			"  kvctl rebalance status --watch\n" +
			"  kvctl rebalance status --watch --interval 5s -o json | jq .progress",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.interval <= 0 {
				return fmt.Errorf("--interval %v: must be > 0", f.interval)
			}
			if f.finished < 0 {
				return fmt.Errorf("--finished %d: must be >= 0", f.finished)
			}
			if !f.watch {
				return a.withClient(cmd, func(ctx context.Context, c *client.Client) error {
					st, err := c.RebalanceStatus(ctx)
					if err != nil {
						return err
					}
					if a.output == outputJSON {
						return writeJSON(cmd.OutOrStdout(), newRebalanceJSON(st))
					}
					return writeRebalanceTable(cmd.OutOrStdout(), st, f.finished, time.Now())
				})
			}
			return a.withClientWithin(cmd, 0, func(ctx context.Context, c *client.Client) error {
				out := cmd.OutOrStdout()
				return a.watchRebalance(ctx, c, out, f, a.output == outputTable && isTerminal(out))
			})
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&f.watch, "watch", "w", false, "refresh until no move is pending or active")
	fl.DurationVar(&f.interval, "interval", time.Second, "with --watch, the time between two refreshes")
	fl.IntVar(&f.finished, "finished", 10, "how many of the last finished moves to show (table output)")
	return cmd
}

// watchRebalance prints the rebalance status every f.interval until it is
// done, ctx ends (an interrupt ends the watch quietly), or a refresh fails:
// as JSON lines, as the whole view redrawn (redraw, for a terminal), or as
// progress lines.
func (a *app) watchRebalance(ctx context.Context, c *client.Client, out io.Writer, f rebalanceFlags, redraw bool) error {
	for {
		rctx, cancel := context.WithTimeout(ctx, a.timeout)
		st, err := c.RebalanceStatus(rctx)
		cancel()
		if err != nil {
			if errors.Is(ctx.Err(), context.Canceled) {
				return nil
			}
			return err
		}
		switch {
		case a.output == outputJSON:
			err = writeJSON(out, newRebalanceJSON(st))
		case redraw:
			var b strings.Builder
			b.WriteString("\033[H\033[2J") // cursor home, clear screen
			fmt.Fprintf(&b, "Every %v: kvctl rebalance status\n\n", f.interval)
			if err := writeRebalanceTable(&b, st, f.finished, time.Now()); err != nil {
				return err
			}
			_, err = io.WriteString(out, b.String())
		default:
			_, err = fmt.Fprintln(out, progressLine(st))
		}
		if err != nil {
			return err
		}
		if st.Done() {
			if a.output == outputTable {
				_, err = fmt.Fprintf(out, "Rebalance done: %s, %s since the target last changed.\n",
					count(int(st.FinishedSinceChange), "move"), humanBytes(st.BytesSinceChange))
			}
			return err
		}
		t := time.NewTimer(f.interval)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			if errors.Is(ctx.Err(), context.Canceled) {
				return nil
			}
			return ctx.Err()
		}
	}
}

// progressLine returns the progress bar of the moves since the target last
// changed: "[#########-----------] 45% 12/27 moves, 3.1 MiB". The bar and
// the percentage round down, so 100% means done.
func progressLine(st *client.RebalanceStatus) string {
	done := st.FinishedSinceChange
	total := done + uint64(len(st.Pending)+len(st.Active))
	filled, pct := uint64(progressWidth), uint64(100)
	if total > 0 {
		filled, pct = done*progressWidth/total, done*100/total
	}
	return fmt.Sprintf("[%s%s] %d%% %d/%d moves, %s",
		strings.Repeat("#", int(filled)), strings.Repeat("-", progressWidth-int(filled)),
		pct, done, total, humanBytes(st.BytesSinceChange))
}

// writeRebalanceTable writes the counts, the progress bar, the active moves
// and the last finished ones (at most finished of them), with times
// relative to now.
func writeRebalanceTable(out io.Writer, st *client.RebalanceStatus, finished int, now time.Time) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "Epoch:\t%d\n", st.Epoch)
	fmt.Fprintf(w, "Moves:\t%d pending, %d active, %d finished since the target last changed\n",
		len(st.Pending), len(st.Active), st.FinishedSinceChange)
	fmt.Fprintf(w, "Moved:\t%s\n", humanBytes(st.BytesSinceChange))
	if st.MaxMovesPerNode > 0 {
		fmt.Fprintf(w, "Throttle:\t%d moves per node\n", st.MaxMovesPerNode)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "\n%s\n", progressLine(st))

	fmt.Fprintln(out)
	if len(st.Active) == 0 {
		if st.Done() {
			fmt.Fprintln(out, "No move pending or active: the placement has reached its target.")
		} else {
			fmt.Fprintf(out, "No move active; %d pending.\n", len(st.Pending))
		}
	} else {
		fmt.Fprintln(out, "Active moves:")
		w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "SHARD\tMOVE\tPHASE\tSTARTED\tBYTES")
		for _, m := range st.Active {
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\n", m.Shard, moveArrow(m), m.Phase, ago(now, m.Started), humanBytes(m.Bytes))
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}

	shown := st.Finished[max(len(st.Finished)-finished, 0):]
	if len(shown) == 0 {
		return nil
	}
	fmt.Fprintln(out, "\nFinished moves, newest last:")
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SHARD\tMOVE\tPHASE\tFINISHED\tTOOK\tBYTES\tREASON")
	for _, m := range shown {
		took := "-"
		if !m.Started.IsZero() && !m.Finished.IsZero() {
			took = max(m.Finished.Sub(m.Started), 0).Round(time.Millisecond).String()
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Shard, moveArrow(m), m.Phase,
			ago(now, m.Finished), took, humanBytes(m.Bytes), dash(m.Reason))
	}
	return w.Flush()
}

// moveArrow returns "FROM→TO", with "-" for a node that is not there.
func moveArrow(m client.Move) string {
	return dash(m.From) + "→" + dash(m.To)
}

// rebalanceJSON is rebalance status's JSON output: the whole status, and
// whether it is done and how far it has got (0..1).
type rebalanceJSON struct {
	Epoch               uint64     `json:"epoch"`
	Done                bool       `json:"done"`
	Progress            float64    `json:"progress"`
	Pending             []moveJSON `json:"pending"`
	Active              []moveJSON `json:"active"`
	Finished            []moveJSON `json:"finished"`
	FinishedSinceChange uint64     `json:"finished_since_change"`
	BytesSinceChange    uint64     `json:"bytes_since_change"`
	MaxMovesPerNode     uint32     `json:"max_moves_per_node"`
}

// moveJSON is a move. From or To is "" when the shard only gains or only
// loses a replica; Started and Finished are absent until they happen.
type moveJSON struct {
	Shard    uint32    `json:"shard"`
	From     string    `json:"from"`
	To       string    `json:"to"`
	Phase    string    `json:"phase"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	Bytes    uint64    `json:"bytes"`
	Reason   string    `json:"reason,omitempty"`
}

func newRebalanceJSON(st *client.RebalanceStatus) rebalanceJSON {
	moves := func(ms []client.Move) []moveJSON {
		out := make([]moveJSON, 0, len(ms))
		for _, m := range ms {
			out = append(out, moveJSON{Shard: m.Shard, From: m.From, To: m.To, Phase: m.Phase,
				Started: m.Started, Finished: m.Finished, Bytes: m.Bytes, Reason: m.Reason})
		}
		return out
	}
	return rebalanceJSON{
		Epoch:               st.Epoch,
		Done:                st.Done(),
		Progress:            st.Progress(),
		Pending:             moves(st.Pending),
		Active:              moves(st.Active),
		Finished:            moves(st.Finished),
		FinishedSinceChange: st.FinishedSinceChange,
		BytesSinceChange:    st.BytesSinceChange,
		MaxMovesPerNode:     st.MaxMovesPerNode,
	}
}
