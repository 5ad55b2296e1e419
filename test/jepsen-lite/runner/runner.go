package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ringkv/ringkv/client"
	"github.com/ringkv/ringkv/test/jepsen-lite/checker"
	"github.com/ringkv/ringkv/test/jepsen-lite/history"
	"github.com/ringkv/ringkv/test/jepsen-lite/nemesis"
	"github.com/ringkv/ringkv/test/jepsen-lite/netns"
	"github.com/ringkv/ringkv/test/jepsen-lite/report"
	"github.com/ringkv/ringkv/test/jepsen-lite/workload"
)

// Bounds of the phases around the workload.
const (
	setupTimeout    = 90 * time.Second // network, nodes, first leaders
	recoveryTimeout = 60 * time.Second // leaders again after the final heal
	settleTimeout   = 90 * time.Second // the rebalance settling after that
	finalTimeout    = 60 * time.Second // the final reads
	teardownTimeout = 60 * time.Second
	nodePort        = 7000
	stopGrace       = 3 * time.Second
	extraSetReads   = 50 // never-written set keys read at the end
)

// ErrInterrupted is returned when ctx ends before the run is complete.
var ErrInterrupted = errors.New("runner: interrupted")

// Run runs one test and returns its summary, also written to the run
// folder. The error reports a run that could not be made or finished (the
// summary then has Error set when there is a folder to hold it); anomalies
// are in the summary's Verdict, not in the error. Everything the run made
// (namespaces, processes) is gone when Run returns, even when ctx ends
// early.
func Run(ctx context.Context, cfg Config) (*report.Summary, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	began := time.Now()
	unlock, err := netns.Lock(ctx, cfg.NetPrefix)
	if err != nil {
		return nil, err
	}
	defer unlock()

	clock := history.NewClock()
	dir, err := report.NewDir(cfg.RunsDir, clock.Start(), cfg.NemesisName(), cfg.Seed)
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, report.LogFile))
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	log := slog.New(slog.NewMultiHandler(cfg.Logger.Handler(), slog.NewTextHandler(logFile, nil)))

	r := &run{cfg: cfg, dir: dir, clock: clock, log: log}
	r.sum = &report.Summary{
		Nemesis: cfg.NemesisName(), Seed: cfg.Seed, Command: cfg.Command, UnsafeLocalReads: cfg.UnsafeLocalReads,
		Dir: dir, Start: clock.Start(), Duration: cfg.Duration.String(), Nodes: cfg.Nodes, Shards: cfg.Shards,
	}
	err = r.run(ctx)
	r.teardown()
	if r.cl != nil {
		r.sum.Membership = r.cl.membership()
	}
	if err != nil {
		r.sum.Error = err.Error()
		log.Error("run failed", "err", err)
		if r.recorder != nil { // count what happened before the failure
			r.sum.Ops = report.CountOps(r.recorder.Ops())
		}
	}
	r.sum.Elapsed = time.Since(began).Round(time.Millisecond).String()
	if werr := report.WriteSummary(dir, r.sum); werr != nil && err == nil {
		err = werr
	}
	if err == nil && !r.sum.Failed() && !cfg.KeepData {
		if rerr := os.RemoveAll(filepath.Join(dir, report.DataDir)); rerr != nil {
			log.Warn("removing data", "err", rerr)
		}
	}
	return r.sum, err
}

// run is one run in progress.
type run struct {
	cfg   Config
	dir   string
	clock *history.Clock
	log   *slog.Logger
	sum   *report.Summary

	net      *netns.Network
	cl       *cluster
	clients  []*client.Client
	recorder *history.Recorder
	timeline *history.Timeline
	files    []*os.File

	teardownOnce sync.Once
}

func (r *run) run(ctx context.Context) error {
	if err := r.setup(ctx); err != nil {
		return err
	}
	keys := workload.RegisterKeys(r.cfg.RegisterKeys, uint32(r.cfg.Shards))
	r.sum.Keys = keys
	reg, set, err := r.workloads(ctx, keys)
	if err != nil {
		return err
	}

	// The workloads and the nemesis, for Duration.
	r.log.Info("running", "nemesis", r.cfg.NemesisName(), "duration", r.cfg.Duration, "keys", keys)
	r.timeline.Add(history.Event{Type: history.Note, Desc: "workload start"})
	wctx, cancel := context.WithTimeout(ctx, r.cfg.Duration)
	var wg sync.WaitGroup
	wg.Go(func() { reg.Run(wctx) })
	wg.Go(func() { set.Run(wctx) })
	wg.Go(func() { r.cl.watch(wctx) })
	if r.cfg.Nemesis != nil {
		rng := rand.New(rand.NewPCG(uint64(r.cfg.Seed), 0x6e656d))
		wg.Go(func() { nemesis.Run(wctx, r.cfg.Nemesis, r.cl, r.cfg.Schedule, rng, r.timeline, r.log) })
	}
	wg.Wait()
	cancel()
	r.timeline.Add(history.Event{Type: history.Note, Desc: "workload end"})
	if ctx.Err() != nil {
		return ErrInterrupted
	}

	// Heal everything, wait for leaders, read everything back.
	hctx, hcancel := context.WithTimeout(ctx, recoveryTimeout)
	defer hcancel()
	if err := r.cl.healAll(hctx); err != nil {
		return fmt.Errorf("final heal: %w", err)
	}
	healed := time.Now()
	r.timeline.Add(history.Event{Type: history.Note, Desc: "final heal"})
	if err := r.cl.waitReady(hctx); err != nil {
		r.log.Warn("no recovery after the final heal", "err", err)
		r.timeline.Add(history.Event{Type: history.Note, Desc: "not recovered", Error: err.Error()})
	} else {
		r.sum.Recovery = time.Since(healed).Round(time.Millisecond).String()
		r.timeline.Add(history.Event{Type: history.Note, Desc: "recovered: every shard has a leader"})
	}
	// The rebalance the faults and the churn started ends before the
	// final reads: they read a cluster at rest.
	sctx, scancel := context.WithTimeout(ctx, settleTimeout)
	defer scancel()
	settling := time.Now()
	if err := r.cl.waitSettled(sctx); err != nil {
		r.sum.SettleError = err.Error()
		r.log.Warn("the cluster did not settle", "err", err)
		r.timeline.Add(history.Event{Type: history.Note, Desc: "not settled", Error: err.Error()})
	} else {
		r.sum.Settle = time.Since(settling).Round(time.Millisecond).String()
		r.timeline.Add(history.Event{Type: history.Note, Desc: "settled: no move pending or under way, every member active"})
	}
	if ctx.Err() != nil {
		return ErrInterrupted
	}
	fctx, fcancel := context.WithTimeout(ctx, finalTimeout)
	defer fcancel()
	reg.FinalReads(fctx)
	set.FinalReads(fctx, extraSetReads)
	r.timeline.Add(history.Event{Type: history.Note, Desc: "final reads done"})
	if ctx.Err() != nil {
		return ErrInterrupted
	}
	r.teardown()
	return r.check()
}

// setup makes the hosts, starts the nodes and waits for leaders.
func (r *run) setup(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	var err error
	for _, f := range []struct {
		name string
		set  func(*os.File)
	}{
		{report.HistoryFile, func(f *os.File) { r.recorder = history.NewRecorder(f) }},
		{report.TimelineFile, func(f *os.File) { r.timeline = history.NewTimeline(r.clock, f) }},
	} {
		file, err := os.Create(filepath.Join(r.dir, f.name))
		if err != nil {
			return err
		}
		r.files = append(r.files, file)
		f.set(file)
	}

	ids := make([]string, r.cfg.Nodes)
	for i := range ids {
		ids[i] = "n" + strconv.Itoa(i+1)
	}
	r.net, err = netns.Create(ctx, netns.Config{Prefix: r.cfg.NetPrefix, Subnet: r.cfg.Subnet, Nodes: ids, Logger: r.log})
	if err != nil {
		return err
	}
	hosts := r.net.Hosts()
	var initial []string
	for _, h := range hosts {
		initial = append(initial, fmt.Sprintf("%s=%s:%d", h.ID, h.IP, nodePort))
	}
	// Every node gets these; the initial ones create the cluster, the
	// churn nemesis's join it (--join).
	common := []string{"--dead-after", r.cfg.DeadAfter.String()}
	if r.cfg.UnsafeLocalReads {
		common = append(common, "--unsafe-local-reads")
	}
	common = append(common, r.cfg.NodeArgs...)
	r.cl = newCluster(r.net, nodeSpec{binary: r.cfg.KVNode, dir: r.dir, port: nodePort, args: common}, r.cfg.Shards, r.timeline, r.log)
	create := []string{
		"--initial-cluster", strings.Join(initial, ","),
		"--shards", strconv.Itoa(r.cfg.Shards),
		"--replicas", strconv.Itoa(r.cfg.Replicas),
	}
	for _, h := range hosts {
		if err := r.cl.start(h, create, false); err != nil {
			return err
		}
	}
	if err := r.cl.waitReady(ctx); err != nil {
		return err
	}
	if err := r.cl.connectAdmin(ctx); err != nil {
		return err
	}
	r.timeline.Add(history.Event{Type: history.Note, Desc: "cluster ready"})
	r.log.Info("cluster ready", "nodes", r.cfg.Nodes, "shards", r.cfg.Shards, "unsafe_local_reads", r.cfg.UnsafeLocalReads)
	return nil
}

// workloads makes the clients and the two workloads.
//
// Every worker has a Client of its own, like Jepsen's processes: workers
// share nothing on the client side, so one worker's open circuit breaker
// or stale leader cache never shapes another's operations, and each has
// its own request-ID session on the shards. The clients are given the
// initial nodes' addresses and learn of the nodes that join from the
// cluster's Status, which the library refreshes its shard map from; every
// host is on the /24 of the test process's veth, so a new one is reachable
// at once. Direct reads share one gRPC connection per node, which only
// carries calls; worker i reads from the i-th (modulo) of the current
// members, so that its reads move on when a node leaves.
func (r *run) workloads(ctx context.Context, keys []string) (*workload.Register, *workload.Set, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	newClient := func() (*client.Client, error) {
		c, err := client.New(ctx, r.cl.addrs(),
			client.WithAttemptTimeout(r.cfg.AttemptTimeout),
			client.WithDefaultTimeout(r.cfg.OpTimeout),
			client.WithBackoff(10*time.Millisecond, 200*time.Millisecond))
		if err != nil {
			return nil, err
		}
		r.clients = append(r.clients, c)
		return c, nil
	}
	reg := &workload.Register{
		Keys: keys, Reads: r.cfg.Reads, DirectReads: r.cfg.DirectReads, CAS: r.cfg.CAS, OpTimeout: r.cfg.OpTimeout,
		Think: r.cfg.Think, Seed: r.cfg.Seed, Clock: r.clock, Recorder: r.recorder,
	}
	for i := range r.cfg.RegisterWorkers {
		c, err := newClient()
		if err != nil {
			return nil, nil, err
		}
		reg.Workers = append(reg.Workers, workload.RegisterWorker{
			Client: workload.Library{C: c},
			DirectPick: func() (string, workload.Reader) {
				node, kv := r.cl.directTarget(i)
				return node, workload.Direct{KV: kv}
			},
		})
	}
	set := &workload.Set{OpTimeout: r.cfg.OpTimeout, Think: r.cfg.Think, Seed: r.cfg.Seed, Clock: r.clock, Recorder: r.recorder}
	for range r.cfg.SetWorkers {
		c, err := newClient()
		if err != nil {
			return nil, nil, err
		}
		set.Workers = append(set.Workers, workload.Library{C: c})
	}
	c, err := newClient()
	if err != nil {
		return nil, nil, err
	}
	set.Final = workload.Library{C: c}
	return reg, set, nil
}

// teardown stops the nodes, closes the clients and removes the network.
// It runs once, even if called again, and whatever state setup reached.
func (r *run) teardown() {
	r.teardownOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), teardownTimeout)
		defer cancel()
		for _, c := range r.clients {
			_ = c.Close()
		}
		if r.cl != nil {
			if r.sum.SettleError != "" {
				r.log.Warn("the cluster did not settle: the nodes dump their goroutines into their logs (SIGQUIT)")
				r.cl.dumpStacks(ctx)
			}
			r.cl.stopAll(ctx)
		}
		if r.net != nil {
			if err := r.net.Close(ctx); err != nil {
				r.log.Warn("removing network", "err", err)
			}
		}
		if r.recorder != nil && r.timeline != nil {
			if err := errors.Join(r.recorder.Flush(), r.timeline.Flush()); err != nil {
				r.log.Warn("writing history", "err", err)
			}
		}
		for _, f := range r.files {
			_ = f.Close()
		}
	})
}

// check runs the checkers and writes the results.
func (r *run) check() error {
	ops := r.recorder.Ops()
	events := r.timeline.Events()
	r.sum.Ops = report.CountOps(ops)
	for _, e := range events {
		switch e.Type {
		case history.FaultStart:
			r.sum.Faults++
		case history.FaultError:
			r.sum.FaultErrors++
		}
	}
	r.log.Info("checking", "ops", len(ops))
	start := time.Now()
	r.sum.Register = checker.CheckRegister(ops, r.cfg.CheckTimeout)
	r.sum.Set = checker.CheckSet(ops)
	r.sum.Verdict = checker.Worst(r.sum.Register.Verdict, r.sum.Set.Verdict)
	r.log.Info("checked", "took", time.Since(start).Round(time.Millisecond), "verdict", r.sum.Verdict)
	intervals := append(history.Intervals(events, r.clock.Now()), history.Marks(events)...)
	if err := report.WriteVisualizations(r.dir, &r.sum.Register, intervals); err != nil {
		return err
	}
	return nil
}
