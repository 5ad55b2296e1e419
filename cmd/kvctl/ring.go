package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ringkv/ringkv/client"
)

func newRingCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "ring",
		Short: "Show how the shard replicas are spread over the nodes",
		Long: "Show the placement of the shard replicas, from the cluster status: per node,\n" +
			"its state, the replicas it holds, the shards it leads and the replicas the\n" +
			"ring wants it to hold (TARGET); how even the spread is now and will be once\n" +
			"the moves are done (mean, min, max and max/mean replicas per node, over the\n" +
			"nodes meant to hold replicas: the joining and active ones); and the shards\n" +
			"whose replica set differs from their target, which are moving.",
		Example: "  kvctl ring\n" +
			"  kvctl ring -o json | jq .replicas.max_over_mean",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				st, err := c.Status(ctx)
				if err != nil {
					return err
				}
				r := newRing(st)
				if a.output == outputJSON {
					return writeJSON(cmd.OutOrStdout(), r)
				}
				return writeRingTable(cmd.OutOrStdout(), r)
			})
		},
	}
}

// ringJSON is ring's output: the placement per node, its evenness now and
// at the target, and the moving shards.
type ringJSON struct {
	Epoch             uint64         `json:"epoch"`
	ShardCount        uint32         `json:"shard_count"`
	ReplicationFactor uint32         `json:"replication_factor"`
	Nodes             []ringNodeJSON `json:"nodes"`
	// Replicas and Target are the evenness of the replicas per node, now
	// and once the moves are done.
	Replicas evennessJSON      `json:"replicas"`
	Target   evennessJSON      `json:"target"`
	Moving   []movingShardJSON `json:"moving"`
}

// ringNodeJSON is a node's share of the placement. A node that a shard
// names but that is not a member has state "unknown".
type ringNodeJSON struct {
	ID       string `json:"id"`
	State    string `json:"state"`
	Replicas int    `json:"replicas"`
	Leads    int    `json:"leads"`
	Target   int    `json:"target"`
}

// evennessJSON is the spread of a number of replicas over the nodes meant
// to hold replicas.
type evennessJSON struct {
	Nodes       int     `json:"nodes"`
	Mean        float64 `json:"mean"`
	Min         int     `json:"min"`
	Max         int     `json:"max"`
	MaxOverMean float64 `json:"max_over_mean"`
}

type movingShardJSON struct {
	Shard    uint32   `json:"shard"`
	Replicas []string `json:"replicas"`
	Target   []string `json:"target"`
}

// newRing counts each node's replicas, leaderships and target replicas.
func newRing(st *client.ClusterStatus) ringJSON {
	r := ringJSON{
		Epoch:             st.Epoch,
		ShardCount:        st.ShardCount,
		ReplicationFactor: st.ReplicationFactor,
		Nodes:             []ringNodeJSON{},
		Moving:            []movingShardJSON{},
	}
	index := make(map[string]int) // node ID -> index in r.Nodes
	node := func(id string) *ringNodeJSON {
		i, ok := index[id]
		if !ok {
			i = len(r.Nodes)
			index[id] = i
			r.Nodes = append(r.Nodes, ringNodeJSON{ID: id, State: "unknown"})
		}
		return &r.Nodes[i]
	}
	for _, m := range st.Members {
		node(m.ID).State = m.State
	}
	for _, sh := range st.Shards {
		for _, id := range sh.Replicas {
			node(id).Replicas++
		}
		for _, id := range sh.Target {
			node(id).Target++
		}
		if sh.Leader != "" {
			node(sh.Leader).Leads++
		}
		if sh.Moving() {
			r.Moving = append(r.Moving, movingShardJSON{Shard: sh.ID, Replicas: sh.Replicas, Target: sh.Target})
		}
	}
	var now, target []int
	for _, n := range r.Nodes {
		if n.State == client.StateActive || n.State == client.StateJoining {
			now = append(now, n.Replicas)
			target = append(target, n.Target)
		}
	}
	r.Replicas, r.Target = evenness(now), evenness(target)
	return r
}

// evenness returns the spread of counts, zero for none.
func evenness(counts []int) evennessJSON {
	if len(counts) == 0 {
		return evennessJSON{}
	}
	e := evennessJSON{Nodes: len(counts), Min: counts[0], Max: counts[0]}
	sum := 0
	for _, n := range counts {
		sum += n
		e.Min, e.Max = min(e.Min, n), max(e.Max, n)
	}
	e.Mean = float64(sum) / float64(len(counts))
	if e.Mean > 0 {
		e.MaxOverMean = float64(e.Max) / e.Mean
	}
	return e
}

func writeRingTable(out io.Writer, r ringJSON) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "Epoch:\t%d\n", r.Epoch)
	moving := "none moving"
	if len(r.Moving) > 0 {
		moving = fmt.Sprintf("%d moving", len(r.Moving))
	}
	fmt.Fprintf(w, "Shards:\t%d (%s)\n", r.ShardCount, moving)
	fmt.Fprintf(w, "Replication factor:\t%d\n", r.ReplicationFactor)
	if err := w.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(out)
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NODE\tSTATE\tREPLICAS\tLEADS\tTARGET")
	for _, n := range r.Nodes {
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\n", n.ID, n.State, n.Replicas, n.Leads, n.Target)
	}
	if err := w.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(out)
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SPREAD\tNODES\tMEAN\tMIN\tMAX\tMAX/MEAN")
	for _, e := range []struct {
		name string
		e    evennessJSON
	}{{"replicas", r.Replicas}, {"target", r.Target}} {
		fmt.Fprintf(w, "%s\t%d\t%.2f\t%d\t%d\t%.2f\n", e.name, e.e.Nodes, e.e.Mean, e.e.Min, e.e.Max, e.e.MaxOverMean)
	}
	if err := w.Flush(); err != nil {
		return err
	}

	if len(r.Moving) == 0 {
		return nil
	}
	fmt.Fprintln(out, "\nMoving shards:")
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SHARD\tREPLICAS\tTARGET")
	for _, m := range r.Moving {
		fmt.Fprintf(w, "%d\t%s\t%s\n", m.Shard, strings.Join(m.Replicas, ","), strings.Join(m.Target, ","))
	}
	return w.Flush()
}
