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

func newClusterCommand(a *app) *cobra.Command {
	cluster := &cobra.Command{
		Use:   "cluster",
		Short: "Inspect the cluster",
	}
	cluster.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "Show the members, the shard map and each shard's leader",
		Long: "Show the cluster's epoch, shard count and replication factor; its members,\n" +
			"with their state (joining, active, draining or dead) and how many shards\n" +
			"each leads and holds; and every shard's replicas and leader, as one node\n" +
			"sees them. While shards move, the number of moving shards is shown, and\n" +
			"each shard's target replicas (TARGET).",
		Example: "  kvctl cluster status\n" +
			"  kvctl cluster status -o json | jq '.members[] | select(.state != \"active\")'",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				st, err := c.Status(ctx)
				if err != nil {
					return err
				}
				s := summarize(st)
				if a.output == outputJSON {
					return writeJSON(cmd.OutOrStdout(), s)
				}
				return writeStatusTable(cmd.OutOrStdout(), s)
			})
		},
	})
	return cluster
}

// statusJSON is cluster status's output: the cluster's status, and per node
// the number of shards it leads and holds.
type statusJSON struct {
	NodeID            string       `json:"node_id"`
	Epoch             uint64       `json:"epoch"`
	ShardCount        uint32       `json:"shard_count"`
	ReplicationFactor uint32       `json:"replication_factor"`
	Members           []memberJSON `json:"members"`
	Shards            []shardJSON  `json:"shards"`
	// Leaderless is the number of shards whose leader is unknown.
	Leaderless int `json:"leaderless"`
	// Moving is the number of shards whose replicas differ from their
	// target.
	Moving int `json:"moving"`
}

type memberJSON struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	State    string `json:"state"`
	Leads    int    `json:"leads"`
	Replicas int    `json:"replicas"`
}

type shardJSON struct {
	ID         uint32   `json:"id"`
	Replicas   []string `json:"replicas"`
	Leader     string   `json:"leader"`
	LeaderTerm uint64   `json:"leader_term"`
	Target     []string `json:"target"`
}

// summarize counts each node's leaderships and replicas. A node a shard
// names that is not a member gets a row of its own, with state "unknown".
func summarize(st *client.ClusterStatus) statusJSON {
	s := statusJSON{
		NodeID:            st.NodeID,
		Epoch:             st.Epoch,
		ShardCount:        st.ShardCount,
		ReplicationFactor: st.ReplicationFactor,
		Members:           []memberJSON{},
		Shards:            []shardJSON{},
	}
	index := make(map[string]int) // node ID -> index in s.Members
	member := func(id string) *memberJSON {
		i, ok := index[id]
		if !ok {
			i = len(s.Members)
			index[id] = i
			s.Members = append(s.Members, memberJSON{ID: id, State: "unknown"})
		}
		return &s.Members[i]
	}
	for _, m := range st.Members {
		mj := member(m.ID)
		mj.Address, mj.State = m.Address, m.State
	}
	for _, sh := range st.Shards {
		s.Shards = append(s.Shards, shardJSON{ID: sh.ID, Replicas: sh.Replicas, Leader: sh.Leader, LeaderTerm: sh.LeaderTerm,
			Target: sh.Target})
		if sh.Moving() {
			s.Moving++
		}
		for _, id := range sh.Replicas {
			member(id).Replicas++
		}
		if sh.Leader == "" {
			s.Leaderless++
		} else {
			member(sh.Leader).Leads++
		}
	}
	return s
}

func writeStatusTable(out io.Writer, s statusJSON) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "Epoch:\t%d\n", s.Epoch)
	fmt.Fprintf(w, "Shards:\t%d\n", s.ShardCount)
	fmt.Fprintf(w, "Replication factor:\t%d\n", s.ReplicationFactor)
	if s.Leaderless > 0 {
		fmt.Fprintf(w, "Shards without a leader:\t%d\n", s.Leaderless)
	}
	if s.Moving > 0 {
		fmt.Fprintf(w, "Shards moving:\t%d\n", s.Moving)
	}
	fmt.Fprintf(w, "Answered by:\t%s\n", s.NodeID)
	if err := w.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(out)
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "MEMBER\tADDRESS\tSTATE\tLEADS\tREPLICAS")
	for _, m := range s.Members {
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\n", m.ID, dash(m.Address), m.State, m.Leads, m.Replicas)
	}
	if err := w.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(out)
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	// The TARGET column only while shards move, and then for every shard.
	if s.Moving == 0 {
		fmt.Fprintln(w, "SHARD\tREPLICAS\tLEADER")
	} else {
		fmt.Fprintln(w, "SHARD\tREPLICAS\tLEADER\tTARGET")
	}
	for _, sh := range s.Shards {
		fmt.Fprintf(w, "%d\t%s\t%s", sh.ID, strings.Join(sh.Replicas, ","), dash(sh.Leader))
		if s.Moving > 0 {
			fmt.Fprintf(w, "\t%s", dash(strings.Join(sh.Target, ",")))
		}
		fmt.Fprintln(w)
	}
	return w.Flush()
}

// dash returns s, or "-" for an empty s.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
