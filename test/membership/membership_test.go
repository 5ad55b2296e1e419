package membership

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringkv/ringkv/client"
	"github.com/ringkv/ringkv/ring"
	"github.com/ringkv/ringkv/test/jepsen-lite/kvnode"
)

const (
	shards   = 32
	replicas = 3
	keyCount = 10000
)

// cluster is a set of kvnode processes and the kvctl binary that drives
// them.
type cluster struct {
	t        *testing.T
	kvnode   string
	kvctlBin string
	dir      string
	procs    map[string]*kvnode.Process
}

func build(t *testing.T, dir, pkg, name string) string {
	t.Helper()
	bin := filepath.Join(dir, name)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (c *cluster) start(id, addr string, args ...string) *kvnode.Process {
	c.t.Helper()
	p := kvnode.New(kvnode.Spec{
		Binary:  c.kvnode,
		ID:      id,
		Addr:    addr,
		DataDir: filepath.Join(c.dir, id),
		LogPath: filepath.Join(c.dir, id+".log"),
		Args: append([]string{
			"--shards", strconv.Itoa(shards), "--replicas", strconv.Itoa(replicas),
			"--dead-after", "4s", "--max-moves-per-node", "8",
			"--heartbeat-timeout", "500ms", "--election-timeout", "1s", "--leader-lease-timeout", "500ms",
		}, args...),
	})
	c.procs[id] = p
	if err := p.Start(); err != nil {
		c.t.Fatal(err)
	}
	return p
}

func (c *cluster) addrs() []string {
	var out []string
	for _, p := range c.procs {
		out = append(out, p.Addr())
	}
	slices.Sort(out)
	return out
}

// kvctl runs kvctl against the cluster and returns its standard output.
func (c *cluster) kvctl(ctx context.Context, args ...string) ([]byte, error) {
	var eps []string
	for _, p := range c.procs {
		if p.Running() {
			eps = append(eps, p.Addr())
		}
	}
	cmd := exec.CommandContext(ctx, c.kvctlBin, append([]string{"--endpoints", strings.Join(eps, ",")}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("kvctl %v: %w\n%s", args, err, stderr.String())
	}
	return out, nil
}

type rebalanceJSON struct {
	Epoch               uint64            `json:"epoch"`
	Pending             []json.RawMessage `json:"pending"`
	Active              []json.RawMessage `json:"active"`
	FinishedSinceChange uint64            `json:"finished_since_change"`
}

// awaitSettled waits until `kvctl rebalance status` reports nothing pending
// or active at an epoch after since, and returns the status.
func (c *cluster) awaitSettled(ctx context.Context, since uint64) *client.ClusterStatus {
	c.t.Helper()
	for {
		out, err := c.kvctl(ctx, "rebalance", "status", "-o", "json")
		if err == nil {
			var rs rebalanceJSON
			if jerr := json.Unmarshal(out, &rs); jerr != nil {
				c.t.Fatalf("rebalance status -o json: %v\n%s", jerr, out)
			}
			if rs.Epoch > since && len(rs.Pending) == 0 && len(rs.Active) == 0 {
				st := c.status(ctx)
				settled := st.Epoch >= rs.Epoch
				for _, m := range st.Members {
					settled = settled && (m.State == "active" || m.State == "dead")
				}
				if settled {
					return st
				}
			}
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("rebalance did not finish: %v (last: %v)\n%s", ctx.Err(), err, out)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// newClient connects to the cluster, waiting for a node to answer.
func (c *cluster) newClient(ctx context.Context, opts ...client.Option) *client.Client {
	c.t.Helper()
	for {
		cl, err := client.New(ctx, c.addrs(), opts...)
		if err == nil {
			return cl
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("client: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (c *cluster) status(ctx context.Context) *client.ClusterStatus {
	c.t.Helper()
	cl := c.newClient(ctx)
	defer cl.Close()
	for {
		st, err := cl.Status(ctx)
		if err == nil {
			return st
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("status: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// writer overwrites random keys through the client library until stopped,
// remembering the last acknowledged value of every key and every error.
type writer struct {
	mu     sync.Mutex
	latest map[string]string
	// maybe holds the value of a key's last write when the writer itself
	// cancelled it on stopping: it may or may not have happened.
	maybe  map[string]string
	errs   []error
	writes int
}

func (w *writer) put(ctx context.Context, cl *client.Client, key, val string) {
	_, err := cl.Put(ctx, []byte(key), []byte(val))
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		if ctx.Err() != nil {
			w.maybe[key] = val // stopped by the test, not failed
			return
		}
		w.errs = append(w.errs, fmt.Errorf("put %s: %w", key, err))
		return
	}
	delete(w.maybe, key)
	w.latest[key] = val
	w.writes++
}

func (w *writer) run(ctx context.Context, cl *client.Client, workers int, seed uint64) func() {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(i)))
			for n := 0; ctx.Err() == nil; n++ {
				// Each key is written by one worker only, so the last
				// acknowledged value is the key's latest.
				k := fmt.Sprintf("key-%05d", rng.IntN(keyCount/workers)*workers+i)
				w.put(ctx, cl, k, fmt.Sprintf("w%d-%d", i, n))
			}
		})
	}
	return func() { cancel(); wg.Wait() }
}

func (w *writer) check(t *testing.T, ctx context.Context, cl *client.Client, phase string) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.errs) > 0 {
		t.Errorf("%s: the writer saw %d errors; first: %v", phase, len(w.errs), w.errs[0])
	}
	keys := make([]string, 0, len(w.latest))
	for k := range w.latest {
		keys = append(keys, k)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	bad := 0
	const readers = 16
	for r := range readers {
		wg.Go(func() {
			for i := r; i < len(keys); i += readers {
				k, want := keys[i], w.latest[keys[i]]
				v, err := cl.Get(ctx, []byte(k))
				if err != nil || string(v.Data) != want && string(v.Data) != w.maybe[k] {
					mu.Lock()
					if bad++; bad <= 5 {
						t.Errorf("%s: get %s = %q, %v; want %q", phase, k, v.Data, err, want)
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if bad > 0 {
		t.Errorf("%s: %d of %d keys do not read back their last acknowledged value", phase, bad, len(w.latest))
	}
	t.Logf("%s: %d keys read back, %d writes acknowledged", phase, len(w.latest), w.writes)
}

func placement(st *client.ClusterStatus) ring.Placement {
	p := ring.Placement{Shards: make([][]string, len(st.Shards))}
	for _, s := range st.Shards {
		p.Shards[s.ID] = slices.Clone(s.Replicas)
	}
	return p
}

func members(st *client.ClusterStatus, states ...string) []string {
	var out []string
	for _, m := range st.Members {
		if slices.Contains(states, m.State) {
			out = append(out, m.ID)
		}
	}
	slices.Sort(out)
	return out
}

// checkMoves compares the placement after a change with the ring's
// prediction from the placement before it.
func checkMoves(t *testing.T, phase string, before, after ring.Placement, placeable []string) {
	t.Helper()
	want, err := ring.Place(before, placeable, shards, ring.Config{Replicas: replicas})
	if err != nil {
		t.Fatalf("%s: ring.Place: %v", phase, err)
	}
	for s := range after.Shards {
		if !sameSet(after.Shards[s], want.Shards[s]) {
			t.Errorf("%s: shard %d on %v; the ring predicts %v", phase, s, after.Shards[s], want.Shards[s])
		}
	}
	moved := len(ring.Diff(before, after))
	t.Logf("%s: %d replica moves (ring predicts %d); balance %v", phase, moved, len(ring.Diff(before, want)), after.Balance(placeable))
	b := after.Balance(placeable)
	if b.Max-b.Min > 1 {
		t.Errorf("%s: replica loads %v differ by more than one", phase, b)
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// TestLongMembership is the acceptance test of online rebalancing: a
// 3-node cluster with 10,000 keys gains a 4th and a 5th node, loses one to
// `kvctl node remove` and one to SIGKILL, and one joining node is killed
// in the middle of a move, all while a writer keeps writing. After each
// step the placement is what the ring predicts, every acknowledged write
// reads back, and the writer saw no error.
func TestLongMembership(t *testing.T) {
	if testing.Short() {
		t.Skip("long: real processes, about three minutes")
	}
	dir := t.TempDir()
	c := &cluster{t: t, dir: dir, procs: map[string]*kvnode.Process{}}
	c.kvnode = build(t, dir, "github.com/ringkv/ringkv/cmd/kvnode", "kvnode")
	c.kvctlBin = build(t, dir, "github.com/ringkv/ringkv/cmd/kvctl", "kvctl")
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	t.Cleanup(func() {
		for _, p := range c.procs {
			sctx, scancel := context.WithTimeout(context.Background(), 15*time.Second)
			_ = p.Stop(sctx, 10*time.Second)
			scancel()
		}
		if t.Failed() {
			for id := range c.procs {
				if b, err := os.ReadFile(filepath.Join(dir, id+".log")); err == nil {
					t.Logf("--- %s log (tail) ---\n%s", id, tail(b, 4000))
				}
			}
		}
	})

	// Three nodes, 10,000 keys.
	addr := map[string]string{}
	var initial []string
	for _, id := range []string{"n1", "n2", "n3", "n4", "n5"} {
		addr[id] = freeAddr(t)
	}
	for _, id := range []string{"n1", "n2", "n3"} {
		initial = append(initial, id+"="+addr[id])
	}
	for _, id := range []string{"n1", "n2", "n3"} {
		c.start(id, addr[id], "--initial-cluster", strings.Join(initial, ","))
	}
	cl := c.newClient(ctx, client.WithDefaultTimeout(30*time.Second))
	defer cl.Close()
	c.awaitReady(ctx, 3)
	w := &writer{latest: map[string]string{}, maybe: map[string]string{}}
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			for k := i; k < keyCount; k += 32 {
				w.put(ctx, cl, fmt.Sprintf("key-%05d", k), "initial")
			}
		})
	}
	wg.Wait()
	w.check(t, ctx, cl, "initial load")
	if t.Failed() {
		t.FailNow()
	}
	seed := uint64(1)
	stopWriter := w.run(ctx, cl, 8, seed)
	defer func() { stopWriter() }()
	// verify pauses the writer, checks every key, and resumes it.
	verify := func(phase string) {
		stopWriter()
		w.check(t, ctx, cl, phase)
		seed++
		stopWriter = w.run(ctx, cl, 8, seed)
	}

	// A 4th node joins.
	st := c.status(ctx)
	before := placement(st)
	c.start("n4", addr["n4"], "--join", strings.Join(c.addrs(), ","))
	st = c.awaitSettled(ctx, st.Epoch)
	after := placement(st)
	checkMoves(t, "join n4", before, after, []string{"n1", "n2", "n3", "n4"})
	if got := len(after.Loads()); got != 4 {
		t.Errorf("join n4: %d nodes hold replicas; want 4", got)
	}
	if n4 := after.Loads()["n4"]; n4 < shards*replicas/4-1 || n4 > shards*replicas/4+1 {
		t.Errorf("join n4: n4 holds %d replicas; want a quarter of %d, ±1", n4, shards*replicas)
	}
	verify("join n4")

	// A 5th node joins, and is killed in the middle of its moves and
	// restarted: the moves resume.
	before = after
	st = c.status(ctx)
	n5 := c.start("n5", addr["n5"], "--join", strings.Join(c.addrs(), ","))
	c.awaitMoveTo(ctx, "n5")
	if err := n5.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	t.Log("n5 killed in the middle of a move")
	time.Sleep(time.Second) // a crash, not a blink: the leader's replication to n5 fails meanwhile
	if err := n5.Start(); err != nil {
		t.Fatal(err)
	}
	st = c.awaitSettled(ctx, st.Epoch)
	after = placement(st)
	checkMoves(t, "join n5 (killed mid-move)", before, after, []string{"n1", "n2", "n3", "n4", "n5"})
	verify("join n5")

	// n2 is removed with kvctl node remove; it leads shards when it starts.
	before = after
	led := 0
	for _, s := range c.status(ctx).Shards {
		if s.Leader == "n2" {
			led++
		}
	}
	t.Logf("n2 leads %d shards before its removal", led)
	out, err := c.kvctl(ctx, "node", "remove", "n2")
	if err != nil {
		t.Fatalf("node remove n2: %v\n%s", err, out)
	}
	st = c.awaitSettled(ctx, 0)
	if slices.Contains(members(st, "joining", "active", "draining", "dead"), "n2") {
		t.Errorf("node remove n2: n2 is still a member: %+v", st.Members)
	}
	after = placement(st)
	checkMoves(t, "remove n2", before, after, []string{"n1", "n3", "n4", "n5"})
	verify("remove n2")
	if err := c.procs["n2"].Stop(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	delete(c.procs, "n2")

	// Removing another would leave too few nodes for later; first check
	// the refusal on a 3-node view is not needed here: n3 is killed.
	before = after
	if err := c.procs["n3"].Kill(ctx); err != nil {
		t.Fatal(err)
	}
	st = c.awaitDead(ctx, "n3")
	st = c.awaitSettled(ctx, st.Epoch-1)
	after = placement(st)
	checkMoves(t, "kill n3", before, after, []string{"n1", "n4", "n5"})
	verify("kill n3")

	// With three live nodes and R=3, removing one more is refused.
	out, err = c.kvctl(ctx, "node", "remove", "n1")
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("replication factor")) {
		t.Errorf("node remove n1 with 3 live nodes: %v\n%s; want a refusal naming the replication factor", err, out)
	}

	// n3 comes back: it is marked alive, drops the replicas it no longer
	// holds (its data is deleted, a tombstone left), and gets its share
	// again.
	before = after
	st = c.status(ctx)
	if err := c.procs["n3"].Start(); err != nil {
		t.Fatal(err)
	}
	st = c.awaitSettled(ctx, st.Epoch)
	after = placement(st)
	checkMoves(t, "n3 back", before, after, []string{"n1", "n3", "n4", "n5"})
	verify("n3 back")
	hosted := map[string]bool{}
	for s, reps := range after.Shards {
		if slices.Contains(reps, "n3") {
			hosted[fmt.Sprintf("%05d", s)] = true
		}
	}
	entries, err := os.ReadDir(filepath.Join(dir, "n3", "shards"))
	if err != nil {
		t.Fatal(err)
	}
	tombstones := 0
	for _, e := range entries {
		switch {
		case e.IsDir() && !hosted[e.Name()]:
			t.Errorf("n3 back: n3 still has data of shard %s, which it no longer holds", e.Name())
		case strings.HasSuffix(e.Name(), ".tombstone"):
			tombstones++
		}
	}
	if tombstones == 0 {
		t.Errorf("n3 back: no tombstone for the replicas it dropped")
	}
	t.Logf("n3 back: holds %d shards, %d tombstones", len(hosted), tombstones)

	stopWriter()
	stopWriter = func() {}
	w.check(t, ctx, cl, "final")
}

// awaitMoveTo waits until a move onto node has finished and another is in
// progress.
func (c *cluster) awaitMoveTo(ctx context.Context, node string) {
	c.t.Helper()
	cl := c.newClient(ctx)
	defer cl.Close()
	for {
		rs, err := cl.RebalanceStatus(ctx)
		if err == nil {
			done, active := 0, 0
			for _, m := range rs.Finished {
				if m.To == node && m.Phase == "done" {
					done++
				}
			}
			for _, m := range rs.Active {
				if m.To == node {
					active++
				}
			}
			if done > 0 && active > 0 {
				return
			}
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("no move onto %s: %v", node, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// awaitReady waits until every shard has a leader and n members.
func (c *cluster) awaitReady(ctx context.Context, n int) {
	c.t.Helper()
	for {
		st := c.status(ctx)
		ready := len(st.Members) == n && len(st.Shards) == shards
		for _, s := range st.Shards {
			ready = ready && s.Leader != ""
		}
		if ready {
			return
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("cluster not ready: %v", ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// awaitDead waits until node is marked dead.
func (c *cluster) awaitDead(ctx context.Context, node string) *client.ClusterStatus {
	c.t.Helper()
	for {
		st := c.status(ctx)
		if slices.Contains(members(st, "dead"), node) {
			return st
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("%s never marked dead: %v", node, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
