package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringkv/ringkv/client"
)

// defaultRemoveTimeout bounds kvctl node remove, waiting included.
const defaultRemoveTimeout = 10 * time.Minute

// nodeRemoveFlags are kvctl node remove's own flags.
type nodeRemoveFlags struct {
	wait     bool
	timeout  time.Duration
	interval time.Duration
}

func newNodeCommand(a *app) *cobra.Command {
	node := &cobra.Command{
		Use:   "node",
		Short: "Change the cluster's membership",
	}
	node.AddCommand(newNodeRemoveCommand(a))
	return node
}

func newNodeRemoveCommand(a *app) *cobra.Command {
	f := nodeRemoveFlags{}
	cmd := &cobra.Command{
		Use:   "remove ID",
		Short: "Drain a node and remove it from the cluster",
		Long: "Drain node ID out of the cluster: every replica it holds moves to another\n" +
			"node, then it leaves the membership. The cluster refuses, and kvctl exits 1\n" +
			"with its reason, when too few nodes would be left for the replication factor.\n\n" +
			"By default kvctl then waits until ID is no longer a member, printing a line\n" +
			"whenever the replicas it holds or the moves left change. --timeout bounds\n" +
			"the whole command, waiting included (here it defaults to 10m). Ending the\n" +
			"wait (--timeout, Ctrl-C) does not stop the drain: the cluster goes on with\n" +
			"it; follow it with kvctl rebalance status --watch. --wait=false returns as\n" +
			"soon as the drain has started.\n\n" +
			"With -o json, the progress lines go to stderr and stdout gets one object:\n" +
			"{\"node\",\"epoch\" (in which it started draining),\"removed\",\"removed_epoch\"}.",
		Example: "  kvctl node remove n3\n" +
			"  kvctl node remove n3 --timeout 1h\n" +
			"  kvctl node remove n3 --wait=false && kvctl rebalance status --watch",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.timeout <= 0 {
				return fmt.Errorf("--timeout %v: must be > 0", f.timeout)
			}
			if f.interval <= 0 {
				return fmt.Errorf("--interval %v: must be > 0", f.interval)
			}
			return a.withClientWithin(cmd, f.timeout, func(ctx context.Context, c *client.Client) error {
				return a.removeNode(ctx, cmd, c, args[0], f)
			})
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.wait, "wait", true, "wait until the node has left the cluster")
	// This --timeout shadows the global one: it bounds the whole command
	// too, but its default allows for the drain.
	fl.DurationVar(&f.timeout, "timeout", defaultRemoveTimeout, "timeout of the whole command, waiting included")
	fl.DurationVar(&f.interval, "interval", time.Second, "with --wait, the time between two looks at the cluster")
	return cmd
}

// removeJSON is node remove's JSON output.
type removeJSON struct {
	Node string `json:"node"`
	// Epoch is the metadata epoch in which the node started draining.
	Epoch uint64 `json:"epoch"`
	// Removed is whether the node has left the cluster; false with
	// --wait=false.
	Removed bool `json:"removed"`
	// RemovedEpoch is the epoch of the first status without the node.
	RemovedEpoch uint64 `json:"removed_epoch,omitempty"`
}

// removeNode starts draining id and, with f.wait, waits for it to leave.
func (a *app) removeNode(ctx context.Context, cmd *cobra.Command, c *client.Client, id string, f nodeRemoveFlags) error {
	out := cmd.OutOrStdout()
	progress := out
	if a.output == outputJSON {
		progress = cmd.ErrOrStderr()
	}
	epoch, err := c.RemoveNode(ctx, id)
	if err != nil {
		return err
	}
	fmt.Fprintf(progress, "%s is draining (epoch %d)\n", id, epoch)
	res := removeJSON{Node: id, Epoch: epoch}
	if f.wait {
		res.RemovedEpoch, err = waitRemoved(ctx, cmd.Context(), c, id, f, progress)
		if err != nil {
			return err
		}
		res.Removed = true
	}
	if a.output == outputJSON {
		return writeJSON(out, res)
	}
	if !f.wait {
		_, err = fmt.Fprintf(out, "Not waiting: %s leaves the cluster once its replicas have moved; follow it with kvctl rebalance status --watch.\n", id)
		return err
	}
	_, err = fmt.Fprintf(out, "%s removed from the cluster (epoch %d).\n", id, res.RemovedEpoch)
	return err
}

// drainProgress is what waitRemoved reports of a draining node.
type drainProgress struct {
	id              string
	state           string
	replicas        int // shards the node holds a replica of
	active, pending int // moves off (or onto) the node
}

// String returns "n3 draining: 2 replicas left, 2 moves left (1 active, 1
// pending)".
func (p drainProgress) String() string {
	return fmt.Sprintf("%s %s: %s left, %s left (%d active, %d pending)",
		p.id, p.state, count(p.replicas, "replica"), count(p.active+p.pending, "move"), p.active, p.pending)
}

// waitRemoved polls the cluster every f.interval until id is no longer a
// member, and returns the epoch of the first status without it. It prints
// a progress line to w whenever the progress changes. A poll that fails for
// want of an answer is reported and retried; one a node refuses ends the
// wait. cmdCtx is the command's own context, which ends on an interrupt.
func waitRemoved(ctx, cmdCtx context.Context, c *client.Client, id string, f nodeRemoveFlags, w io.Writer) (uint64, error) {
	var last *drainProgress
	for {
		p, epoch, gone, err := pollDrain(ctx, c, id)
		switch {
		case err == nil && gone:
			return epoch, nil
		case err == nil:
			if last == nil || p != *last {
				fmt.Fprintln(w, p)
			}
			last = &p
		case ended(ctx):
			// Reported below.
		case isRefusal(err):
			return 0, fmt.Errorf("waiting for %s to leave: %w", id, err)
		default:
			fmt.Fprintf(w, "%s: no answer from the cluster (%v); still waiting\n", id, err)
		}

		t := time.NewTimer(f.interval)
		select {
		case <-t.C:
			continue
		case <-ctx.Done():
			t.Stop()
		}
		how := fmt.Sprintf("still a member after %v", f.timeout)
		if cmdCtx.Err() != nil {
			how = "interrupted"
		}
		where := ""
		if last != nil {
			where = fmt.Sprintf(" (%s left, %s left)", count(last.replicas, "replica"), count(last.active+last.pending, "move"))
		}
		return 0, fmt.Errorf("%s %s%s; the drain goes on in the cluster: follow it with kvctl rebalance status --watch", id, how, where)
	}
}

// pollDrain looks at the cluster once, within the default timeout: gone is
// whether id has left it (epoch is then that status's), else p says how
// far its drain has got.
func pollDrain(ctx context.Context, c *client.Client, id string) (p drainProgress, epoch uint64, gone bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, defaultTimeout)
	defer cancel()
	st, err := c.Status(ctx)
	if err != nil {
		return p, 0, false, err
	}
	i := slices.IndexFunc(st.Members, func(m client.Member) bool { return m.ID == id })
	if i < 0 {
		return p, st.Epoch, true, nil
	}
	p.id, p.state = id, st.Members[i].State
	for _, sh := range st.Shards {
		if slices.Contains(sh.Replicas, id) {
			p.replicas++
		}
	}
	rb, err := c.RebalanceStatus(ctx)
	if err != nil {
		return p, 0, false, err
	}
	involves := func(m client.Move) bool { return m.From == id || m.To == id }
	for _, m := range rb.Active {
		if involves(m) {
			p.active++
		}
	}
	for _, m := range rb.Pending {
		if involves(m) {
			p.pending++
		}
	}
	return p, 0, false, nil
}

// ended reports whether ctx has ended or its deadline has passed: gRPC fails
// a call whose deadline has passed by its own clock a moment before the
// context's timer fires.
func ended(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// isRefusal reports whether err is a node's refusal of a call, which a
// retry would meet again, rather than a failure to get an answer.
func isRefusal(err error) bool {
	var se *client.ServerError
	return errors.As(err, &se)
}
