// Command bench compares ringkv with etcd side by side: the same closed-loop
// load generator (package loadgen), the same workloads, keys and values,
// driven against a running ringkv cluster and a running etcd cluster in
// alternating rounds, and reports the medians with their ratio.
//
// It lives in a module of its own so that ringkv's module never depends on
// etcd. scripts/bench.sh (make bench) builds it, starts both clusters on
// loopback, runs it and cleans up:
//
//	bench --ringkv 127.0.0.1:7001,... --etcd 127.0.0.1:2379,... --out DIR
//
// It writes DIR/results.json (every run), DIR/summary.md (the table) and
// DIR/chart.svg (throughput and p99 against clients), and prints the
// table. With --ringkv-debug (the nodes' --debug-addr), it then profiles
// every ringkv node's CPU during one more run of --profile-workload at
// --profile-clients (default: put at 64 clients).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ringkv/ringkv/loadgen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
		os.Exit(1)
	}
}

// options are the command line's.
type options struct {
	ringkv, etcd   []string
	plan           string
	clientsPerConn int
	settings       settings
	out            string
	disk           string
	versions       map[string]string
	readyWait      time.Duration
	balanceWait    time.Duration
	ringkvDebug    []string
	profileSecs    int
	profileClients int
	profileMix     string
	render         string
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{versions: map[string]string{}}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var ringkv, etcd, debug string
	fs.StringVar(&ringkv, "ringkv", "", "comma-separated gRPC addresses of the ringkv nodes (required)")
	fs.StringVar(&etcd, "etcd", "", "comma-separated client addresses (host:port) of the etcd members (required)")
	fs.StringVar(&o.plan, "plan", defaultPlan, "workloads: space-separated NAME:CLIENTS[,CLIENTS...], NAME put, get or mixedNN (NN% reads)")
	fs.IntVar(&o.clientsPerConn, "clients-per-conn", 32, "clients per connection (client instance); at least one connection")
	fs.IntVar(&o.settings.Rounds, "rounds", 3, "rounds per workload and system; the systems alternate going first")
	fs.DurationVar(&o.settings.Duration, "duration", 8*time.Second, "measured time of each run")
	fs.DurationVar(&o.settings.Warmup, "warmup", 2*time.Second, "unmeasured load before each run")
	fs.DurationVar(&o.settings.Pause, "pause", time.Second, "idle time after each run")
	fs.IntVar(&o.settings.Keys, "keys", loadgen.DefaultKeys, "distinct keys")
	fs.IntVar(&o.settings.ValueSize, "value-size", loadgen.DefaultValueSize, "bytes per value")
	fs.StringVar(&o.out, "out", "", "directory for results.json, summary.md and chart.svg (required)")
	fs.StringVar(&o.disk, "disk", "", "description of the disk both clusters' data is on, for the report")
	fs.Func("version", "NAME=VERSION of a system, for the report (repeatable)", func(s string) error {
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return fmt.Errorf("want NAME=VERSION")
		}
		o.versions[k] = v
		return nil
	})
	fs.DurationVar(&o.readyWait, "ready-wait", time.Minute, "how long to wait for each cluster to accept writes")
	fs.DurationVar(&o.balanceWait, "balance-wait", time.Minute, "how long to wait for ringkv's shard leaderships to spread evenly")
	fs.StringVar(&debug, "ringkv-debug", "", "comma-separated --debug-addr of the ringkv nodes: profile their CPU after the comparison")
	fs.IntVar(&o.profileSecs, "profile-seconds", 15, "length of the CPU profile")
	fs.IntVar(&o.profileClients, "profile-clients", 64, "clients of the run that is profiled")
	fs.StringVar(&o.profileMix, "profile-workload", "put", "workload of the run that is profiled: put, get or mixedNN")
	fs.StringVar(&o.render, "render", "", "only redraw summary.md and chart.svg from this results.json, beside it, and print its table")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if o.render != "" {
		return o, nil
	}
	o.ringkv, o.etcd, o.ringkvDebug = splitList(ringkv), splitList(etcd), splitList(debug)
	switch {
	case len(o.ringkv) == 0 || len(o.etcd) == 0:
		return nil, errors.New("--ringkv and --etcd are required")
	case o.out == "":
		return nil, errors.New("--out is required")
	case o.settings.Rounds < 1:
		return nil, errors.New("--rounds must be >= 1")
	}
	return o, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if o.render != "" {
		return render(o.render, stdout)
	}
	plan, err := parsePlan(o.plan, o.clientsPerConn)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	logf := func(format string, a ...any) {
		fmt.Fprintf(stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
	}

	setupCtx, cancel := context.WithTimeout(ctx, o.readyWait)
	defer cancel()
	rk, err := openRingkv(setupCtx, o.ringkv, maxConns(plan))
	if err != nil {
		return fmt.Errorf("ringkv: %w", err)
	}
	defer rk.close()
	et, err := openEtcd(setupCtx, o.etcd, maxConns(plan))
	if err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	defer et.close()
	systems := []*system{rk, et}
	names := []string{rk.name, et.name}
	for _, sys := range systems {
		if err := waitWritable(setupCtx, sys.stores[0]); err != nil {
			return fmt.Errorf("%s does not accept writes: %w", sys.name, err)
		}
	}
	balanceCtx, cancelBalance := context.WithTimeout(ctx, o.balanceWait)
	waitBalanced(balanceCtx, o.ringkv, logf)
	cancelBalance()

	if reads(plan) || (len(o.ringkvDebug) > 0 && o.profileMix != "put") {
		for _, sys := range systems {
			start := time.Now()
			cfg := loadgen.Config{Keys: o.settings.Keys, ValueSize: o.settings.ValueSize}
			if err := loadgen.Prepopulate(ctx, cfg, sys.stores, 64); err != nil {
				return fmt.Errorf("%s: %w", sys.name, err)
			}
			logf("%s: prepopulated %d keys of %d bytes in %v, so that reads find them", sys.name,
				o.settings.Keys, o.settings.ValueSize, time.Since(start).Round(time.Millisecond))
		}
	}

	per := o.settings.Warmup + o.settings.Duration + o.settings.Pause
	logf("%d workloads × %d rounds × %d systems, about %v", len(plan), o.settings.Rounds, len(systems),
		(time.Duration(len(plan)*o.settings.Rounds*len(systems)) * per).Round(time.Second))
	rep := report{Start: time.Now(), Machine: thisMachine(o.disk), Versions: o.versions, Settings: o.settings}
	runs, runErr := compare(ctx, systems, plan, o.settings, logf)
	rep.End, rep.Runs = time.Now(), runs
	rep.Summary = summarize(runs, plan, names)
	if err := writeResults(o.out, rep, names); err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	if err := writeTable(stdout, rep.Summary, names); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nmedians of %d rounds; ratio = %s ops/s / %s ops/s; latencies in ms; results in %s\n",
		o.settings.Rounds, names[0], names[1], o.out)
	if runErr != nil {
		return fmt.Errorf("interrupted; results cover the runs done: %w", runErr)
	}

	if len(o.ringkvDebug) > 0 {
		return profile(ctx, rk, o, logf)
	}
	return nil
}

// render redraws summary.md and chart.svg from a results.json, beside it,
// and prints its table; results.json stays as it is.
func render(path string, stdout io.Writer) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if len(rep.Summary) == 0 || len(rep.Summary[0].Systems) != 2 {
		return fmt.Errorf("%s: no comparison of two systems in it", path)
	}
	names := []string{rep.Summary[0].Systems[0].System, rep.Summary[0].Systems[1].System}
	// Summarize the runs anew, so that a file written by an older driver
	// gets what this one computes.
	var plan []workload
	for _, l := range rep.Summary {
		plan = append(plan, l.workload)
	}
	rep.Summary = summarize(rep.Runs, plan, names)
	dir := filepath.Dir(path)
	var md strings.Builder
	writeMarkdown(&md, rep, names)
	if err := os.WriteFile(filepath.Join(dir, "summary.md"), []byte(md.String()), 0o644); err != nil {
		return err
	}
	if err := writeChartFile(dir, rep, names); err != nil {
		return err
	}
	return writeTable(stdout, rep.Summary, names)
}

// writeResults writes results.json, summary.md and chart.svg into dir.
func writeResults(dir string, rep report, names []string) error {
	if err := writeJSONFile(filepath.Join(dir, "results.json"), rep); err != nil {
		return err
	}
	var md strings.Builder
	writeMarkdown(&md, rep, names)
	if err := os.WriteFile(filepath.Join(dir, "summary.md"), []byte(md.String()), 0o644); err != nil {
		return err
	}
	return writeChartFile(dir, rep, names)
}

// writeChartFile writes chart.svg into dir.
func writeChartFile(dir string, rep report, names []string) error {
	var svg strings.Builder
	title := fmt.Sprintf("%s vs %s, 3 nodes each on one %d-CPU machine, %d-byte values (medians of %d rounds)",
		names[0], names[1], rep.Machine.CPUs, rep.Settings.ValueSize, rep.Settings.Rounds)
	if err := writeChart(&svg, rep.Summary, names, title); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "chart.svg"), []byte(svg.String()), 0o644)
}

// profile runs a workload against ringkv and meanwhile takes a CPU profile
// of every node, saved as cpu-<addr>.pprof in the output directory.
func profile(ctx context.Context, rk *system, o *options, logf func(string, ...any)) error {
	secs := o.profileSecs
	clients := o.profileClients
	mix, err := mixOf(o.profileMix)
	if err != nil {
		return err
	}
	conns := min(len(rk.stores), connsFor(clients, o.clientsPerConn))
	logf("profiling %d ringkv nodes for %ds during %s at %d clients", len(o.ringkvDebug), secs, o.profileMix, clients)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(o.ringkvDebug))
	for i, addr := range o.ringkvDebug {
		wg.Go(func() {
			// Let the load start first.
			if errs[i] = sleep(ctx, time.Second); errs[i] != nil {
				return
			}
			errs[i] = fetchProfile(ctx, addr, secs, filepath.Join(o.out, "cpu-"+strings.ReplaceAll(addr, ":", "_")+".pprof"))
		})
	}
	res, err := loadgen.Run(ctx, loadgen.Config{Clients: clients, Duration: time.Duration(secs+2) * time.Second,
		Keys: o.settings.Keys, ValueSize: o.settings.ValueSize, Mix: mix}, rk.stores[:conns])
	wg.Wait()
	if err != nil {
		return err
	}
	logf("profiled run: %.0f ops/s, p99 %s ms", res.OpsPerSec, fmtMs(mergedLatency(res).P99))
	return errors.Join(errs...)
}

func fetchProfile(ctx context.Context, addr string, secs int, path string) error {
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("profile %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile %s: %s", addr, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
