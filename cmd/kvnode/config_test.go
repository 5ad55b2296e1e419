package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringkv/ringkv/client"
)

// testFlags is a flag set with one flag of each kind kvnode uses.
type testFlags struct {
	fs        *flag.FlagSet
	dataDir   string
	join      string
	shards    int
	rate      int64
	deadAfter time.Duration
	unsafe    bool
	// ignored are the warnings of the last load.
	ignored []string
}

func newTestFlags() *testFlags {
	f := &testFlags{fs: flag.NewFlagSet("kvnode", flag.ContinueOnError)}
	f.fs.SetOutput(io.Discard)
	f.fs.StringVar(&f.dataDir, "data-dir", "default-dir", "")
	f.fs.StringVar(&f.join, "join", "", "")
	f.fs.IntVar(&f.shards, "shards", 64, "")
	f.fs.Int64Var(&f.rate, "snapshot-rate", 32<<20, "")
	f.fs.DurationVar(&f.deadAfter, "dead-after", time.Minute, "")
	f.fs.BoolVar(&f.unsafe, "unsafe-local-reads", false, "")
	f.fs.String(configFlag, "", "")
	return f
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// load parses args and applies environ and the config file.
func (f *testFlags) load(args, environ []string) error {
	if err := f.fs.Parse(args); err != nil {
		return err
	}
	ignored, err := applyConfig(f.fs, environ)
	f.ignored = ignored
	return err
}

const yamlConfig = `# every kind of flag
data-dir: /from/file
shards: 16
snapshot-rate: 1048576
dead-after: 30s
unsafe-local-reads: true
join: [a:1, b:2]
`

const tomlConfig = `# every kind of flag
data-dir = "/from/file"
shards = 16
snapshot-rate = 1048576
dead-after = "30s"
unsafe-local-reads = true
join = ["a:1", "b:2"]
`

func TestConfigFileFormats(t *testing.T) {
	for _, tc := range []struct{ name, content string }{
		{"kvnode.yaml", yamlConfig},
		{"kvnode.yml", yamlConfig},
		{"kvnode.toml", tomlConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newTestFlags()
			if err := f.load([]string{"--config", writeFile(t, tc.name, tc.content)}, nil); err != nil {
				t.Fatalf("load = %v", err)
			}
			if f.dataDir != "/from/file" || f.shards != 16 || f.rate != 1<<20 || f.deadAfter != 30*time.Second ||
				!f.unsafe || f.join != "a:1,b:2" {
				t.Errorf("flags = data-dir %q shards %d snapshot-rate %d dead-after %v unsafe %v join %q; want the file's",
					f.dataDir, f.shards, f.rate, f.deadAfter, f.unsafe, f.join)
			}
		})
	}
}

// Command line > environment > file > default, flag by flag.
func TestConfigPrecedence(t *testing.T) {
	path := writeFile(t, "kvnode.yaml", "data-dir: /file\nshards: 16\ndead-after: 30s\n")
	f := newTestFlags()
	err := f.load([]string{"--config", path, "--data-dir", "/flag"},
		[]string{"RINGKV_DATA_DIR=/env", "RINGKV_SHARDS=32", "HOME=/root", "PATH=/bin"})
	if err != nil {
		t.Fatalf("load = %v", err)
	}
	if f.dataDir != "/flag" {
		t.Errorf("data-dir = %q; want /flag (command line over environment and file)", f.dataDir)
	}
	if f.shards != 32 {
		t.Errorf("shards = %d; want 32 (environment over file)", f.shards)
	}
	if f.deadAfter != 30*time.Second {
		t.Errorf("dead-after = %v; want 30s (file over default)", f.deadAfter)
	}
	if f.rate != 32<<20 {
		t.Errorf("snapshot-rate = %d; want the default", f.rate)
	}
}

// An unknown RINGKV_ variable is not an error (scripts and tests set
// variables of that prefix too) but is reported, to be logged as a
// warning; the known ones still apply.
func TestConfigUnknownVariableIsReported(t *testing.T) {
	f := newTestFlags()
	if err := f.load(nil, []string{"RINGKV_DATADIR=/x", "RINGKV_SHARDS=12"}); err != nil {
		t.Fatalf("load = %v; want no error", err)
	}
	if len(f.ignored) != 1 || !strings.Contains(f.ignored[0], "RINGKV_DATADIR") || !strings.Contains(f.ignored[0], "no flag --datadir") {
		t.Errorf("ignored = %q; want one warning naming RINGKV_DATADIR and --datadir", f.ignored)
	}
	if f.shards != 12 || f.dataDir != "default-dir" {
		t.Errorf("shards %d, data-dir %q; want 12 and the default", f.shards, f.dataDir)
	}
}

func TestConfigEnvOnly(t *testing.T) {
	path := writeFile(t, "kvnode.toml", "shards = 8\n")
	f := newTestFlags()
	err := f.load(nil, []string{"RINGKV_CONFIG=" + path, "RINGKV_DEAD_AFTER=5s", "RINGKV_UNSAFE_LOCAL_READS=true"})
	if err != nil {
		t.Fatalf("load = %v", err)
	}
	if f.shards != 8 || f.deadAfter != 5*time.Second || !f.unsafe {
		t.Errorf("shards %d dead-after %v unsafe %v; want 8 (file named by RINGKV_CONFIG), 5s, true", f.shards, f.deadAfter, f.unsafe)
	}
}

// Typos and wrong types are errors that name the key or variable; nothing
// is silently ignored.
func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name    string
		file    string // name and content, "" for none
		content string
		environ []string
		want    []string // substrings of the error
	}{
		{"unknown yaml key", "c.yaml", "data-dri: /x\n", nil, []string{`unknown key "data-dri"`, "c.yaml"}},
		{"unknown toml key", "c.toml", "shard = 3\n", nil, []string{`unknown key "shard"`}},
		{"string for an int", "c.yaml", "shards: many\n", nil, []string{`key "shards"`, "want an integer", `a string ("many")`}},
		{"int for a duration", "c.toml", "dead-after = 60\n", nil, []string{`key "dead-after"`, "want a duration", "an integer (60)"}},
		{"bad duration", "c.yaml", "dead-after: 5 minutes\n", nil, []string{`key "dead-after"`, "want a duration"}},
		{"string for a bool", "c.yaml", "unsafe-local-reads: \"yes\"\n", nil, []string{`key "unsafe-local-reads"`, "want a boolean"}},
		{"number for a string", "c.yaml", "data-dir: 7\n", nil, []string{`key "data-dir"`, "want a string", "an integer (7)"}},
		{"table", "c.toml", "[data-dir]\nx = 1\n", nil, []string{`key "data-dir"`, "a table"}},
		{"nested config", "c.yaml", "config: other.yaml\n", nil, []string{`key "config"`}},
		{"unknown format", "c.json", "{}", nil, []string{"c.json", ".yaml, .yml or .toml"}},
		{"yaml syntax", "c.yaml", "shards: [1\n", nil, []string{"c.yaml"}},
		{"bad variable", "", "", []string{"RINGKV_SHARDS=many"}, []string{"RINGKV_SHARDS", "want an integer"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTestFlags()
			var args []string
			if tt.file != "" {
				args = []string{"--config", writeFile(t, tt.file, tt.content)}
			}
			err := f.load(args, tt.environ)
			if err == nil {
				t.Fatalf("load = nil; want an error containing %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	// A missing file named explicitly is an error too.
	f := newTestFlags()
	if err := f.load([]string{"--config", filepath.Join(t.TempDir(), "none.yaml")}, nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("load(missing file) = %v; want ErrNotExist", err)
	}
}

// Every flag of the real kvnode can be set from a file and from the
// environment: the mechanism is generic over the flag set.
func TestConfigCoversEveryKVNodeFlag(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// --help makes run return after defining every flag, before starting.
	var out bytes.Buffer
	if err := run(ctx, []string{"--help"}, nil, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("run --help = %v", err)
	}
	names := regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(out.String(), -1)
	if len(names) < 20 {
		t.Fatalf("found %d flags in --help:\n%s", len(names), out.String())
	}
	for _, m := range names {
		name := m[1]
		if name == configFlag {
			continue
		}
		// An unknown value type is refused by the flag itself, not as an
		// unknown key: every flag is known to the file and the environment.
		file := writeFile(t, "k.toml", name+" = [[1]]\n")
		err := run(ctx, []string{"--config", file}, nil, io.Discard)
		if err == nil || strings.Contains(err.Error(), "unknown key") {
			t.Errorf("file key %q: %v; want a type error, not unknown", name, err)
		}
		err = run(ctx, nil, []string{envName(name) + "=\x00bad"}, io.Discard)
		if err != nil && strings.Contains(err.Error(), "no flag") {
			t.Errorf("variable %s: %v; want it known", envName(name), err)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the node's logger and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRunFromConfigFileOnly starts kvnode with nothing but --config and
// serves a put and a get.
func TestRunFromConfigFileOnly(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, "kvnode.yaml", `id: n1
listen: 127.0.0.1:0
data-dir: `+filepath.Join(dir, "data")+`
shards: 4
heartbeat-timeout: 200ms
election-timeout: 200ms
leader-lease-timeout: 200ms
commit-timeout: 50ms
log-level: info
`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"--config", path}, []string{"HOME=/nowhere"}, &logs) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run = %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("run did not return after its context ended")
		}
	}()

	started := regexp.MustCompile(`msg="node started".* listen=(\S+)`)
	var addr string
	deadline := time.Now().Add(20 * time.Second)
	for addr == "" {
		if m := started.FindStringSubmatch(logs.String()); m != nil {
			addr = m[1]
			break
		}
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v\n%s", err, logs.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("node did not start:\n%s", logs.String())
		}
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer ccancel()
	// The node serves once its one-node cluster has elected its leaders.
	var cl *client.Client
	for cl == nil {
		var err error
		if cl, err = client.New(cctx, []string{addr}); err != nil {
			if cctx.Err() != nil {
				t.Fatalf("client.New(%s) = %v\n%s", addr, err, logs.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	defer cl.Close()
	if _, err := cl.Put(cctx, []byte("k"), []byte("from-config")); err != nil {
		t.Fatalf("Put = %v", err)
	}
	v, err := cl.Get(cctx, []byte("k"))
	if err != nil || string(v.Data) != "from-config" {
		t.Fatalf("Get = %q, %v; want from-config", v.Data, err)
	}
	if !strings.Contains(logs.String(), "data_dir="+filepath.Join(dir, "data")) {
		t.Errorf("node log does not show the file's data-dir:\n%s", logs.String())
	}
}

// The sample files in deploy/ hold only keys and variables kvnode knows,
// with values of the right types. Each is run with --listen=bad on the
// command line, which wins over the sample and makes the node's own
// validation refuse to start: the error is about the listen address, so
// the sample itself went through.
func TestDeploySamplesAreValid(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wantRefusal := func(what string, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), `listen address "bad"`) {
			t.Errorf("%s: run = %v; want only the command line's bad listen address refused", what, err)
		}
	}
	for _, p := range []string{"../../deploy/config/kvnode.yaml", "../../deploy/config/kvnode.toml"} {
		wantRefusal(p, run(ctx, []string{"--config", p, "--listen", "bad"}, nil, io.Discard))
	}

	b, err := os.ReadFile("../../deploy/systemd/kvnode.env.example")
	if err != nil {
		t.Fatal(err)
	}
	var environ, all []string
	for _, line := range strings.Split(string(b), "\n") {
		commented := strings.HasPrefix(line, "#")
		line = strings.TrimPrefix(line, "#")
		if !strings.HasPrefix(line, envPrefix) {
			continue
		}
		all = append(all, line)
		if !commented {
			environ = append(environ, line)
		}
	}
	if len(environ) < 4 || len(all) <= len(environ) {
		t.Fatalf("env example: %d variables, %d with the commented ones; the parse is off", len(environ), len(all))
	}
	wantRefusal("kvnode.env.example", run(ctx, []string{"--listen", "bad"}, environ, io.Discard))
	// The commented ones name flags too (checked without running them all:
	// --join and --initial-cluster together are refused).
	var help bytes.Buffer
	_ = run(ctx, []string{"--help"}, nil, &help)
	for _, kv := range all {
		name, _, _ := strings.Cut(kv, "=")
		flagName := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, envPrefix)), "_", "-")
		if name != "RINGKV_CONFIG" && !strings.Contains(help.String(), "  -"+flagName+" ") {
			t.Errorf("env example names %s, but kvnode has no flag --%s", name, flagName)
		}
	}
}
