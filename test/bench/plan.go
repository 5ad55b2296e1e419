package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ringkv/ringkv/loadgen"
)

// defaultPlan is the comparison the issue asks for: writes at 1-256
// clients, linearizable reads at 1-256, and a 90% read mix at 64.
const defaultPlan = "put:1,16,64,256 get:1,64,256 mixed90:64"

// workload is one line of the comparison: an operation mix at a number of
// clients.
type workload struct {
	Name    string      `json:"workload"` // put, get, mixed90
	Mix     loadgen.Mix `json:"-"`
	Clients int         `json:"clients"`
	Conns   int         `json:"conns"`
}

// parsePlan parses a plan: space-separated groups NAME:CLIENTS[,CLIENTS...],
// where NAME is put, get or mixedNN (NN percent reads). Each group gives
// one workload per client count, connections from clientsPerConn.
func parsePlan(plan string, clientsPerConn int) ([]workload, error) {
	var out []workload
	for _, group := range strings.Fields(plan) {
		name, counts, ok := strings.Cut(group, ":")
		if !ok || counts == "" {
			return nil, fmt.Errorf("plan %q: want NAME:CLIENTS[,CLIENTS...]", group)
		}
		mix, err := mixOf(name)
		if err != nil {
			return nil, err
		}
		for _, c := range strings.Split(counts, ",") {
			n, err := strconv.Atoi(c)
			if err != nil || n < 1 {
				return nil, fmt.Errorf("plan %q: bad client count %q", group, c)
			}
			out = append(out, workload{Name: name, Mix: mix, Clients: n, Conns: connsFor(n, clientsPerConn)})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("empty plan")
	}
	return out, nil
}

// mixOf returns the mix a workload name stands for.
func mixOf(name string) (loadgen.Mix, error) {
	switch name {
	case "put":
		return loadgen.PutOnly(), nil
	case "get":
		return loadgen.GetOnly(), nil
	}
	if pct, ok := strings.CutPrefix(name, "mixed"); ok {
		n, err := strconv.Atoi(pct)
		if err == nil && n >= 0 && n <= 100 {
			return loadgen.ReadMix(n), nil
		}
	}
	return loadgen.Mix{}, fmt.Errorf("unknown workload %q: want put, get or mixedNN (NN%% reads)", name)
}

// connsFor returns how many connections clients share: one per
// clientsPerConn clients, rounded down, at least one.
func connsFor(clients, clientsPerConn int) int {
	return max(1, clients/max(1, clientsPerConn))
}

// reads reports whether any workload of the plan reads.
func reads(plan []workload) bool {
	for _, w := range plan {
		if w.Mix[loadgen.OpGet] > 0 {
			return true
		}
	}
	return false
}

// maxConns returns the most connections any workload of the plan uses.
func maxConns(plan []workload) int {
	n := 1
	for _, w := range plan {
		n = max(n, w.Conns)
	}
	return n
}
