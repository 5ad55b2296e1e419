package kvnode

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The test binary doubles as a fake kvnode: started with this variable
// set, it ignores its arguments and waits to be signalled.
const fakeEnv = "JEPSEN_KVNODE_FAKE"

func TestMain(m *testing.M) {
	if os.Getenv(fakeEnv) == "1" {
		select {}
	}
	os.Exit(m.Run())
}

// state returns the process state letter of pid from /proc ("T" when
// stopped), or "" when there is no such process.
func state(pid int) string {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return ""
	}
	return string(stat[i+2])
}

// waitState waits up to 5 s for pid to reach one of the states.
func waitState(t *testing.T, pid int, states string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if s := state(pid); s != "" && strings.Contains(states, s) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process %d in state %q; want one of %q", pid, state(pid), states)
}

func TestProcessLifecycle(t *testing.T) {
	t.Setenv(fakeEnv, "1")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := New(Spec{Binary: self, ID: "n1", Addr: "127.0.0.1:0", DataDir: filepath.Join(dir, "data"), LogPath: filepath.Join(dir, "n1.log")})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t.Cleanup(func() { _ = p.Stop(context.Background(), time.Second) })

	if err := p.Pause(); err == nil {
		t.Error("Pause before Start succeeded")
	}
	if err := p.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	pid := p.PID()
	if !p.Running() || pid == 0 {
		t.Fatalf("Running() = %v, PID() = %d after Start", p.Running(), pid)
	}
	if err := p.Start(); err != nil || p.PID() != pid {
		t.Errorf("second Start: %v, PID %d; want no-op on %d", err, p.PID(), pid)
	}

	if err := p.Pause(); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	waitState(t, pid, "T")
	if !p.Paused() {
		t.Error("Paused() = false after Pause")
	}
	if err := p.Resume(); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	waitState(t, pid, "SR")

	if err := p.Kill(ctx); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if p.Running() || p.PID() != 0 {
		t.Errorf("Running() = %v, PID() = %d after Kill", p.Running(), p.PID())
	}
	if err := p.Start(); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if p.PID() == pid || p.PID() == 0 {
		t.Errorf("restarted PID %d; want a new process (was %d)", p.PID(), pid)
	}
	if err := p.Pause(); err != nil { // Stop must cope with a paused process
		t.Fatal(err)
	}
	if err := p.Stop(ctx, 200*time.Millisecond); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if p.Running() {
		t.Error("Running() after Stop")
	}
	if err := p.Stop(ctx, time.Second); err != nil {
		t.Errorf("second Stop: %v", err)
	}

	log, err := os.ReadFile(filepath.Join(dir, "n1.log"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(log), "=== jepsen-lite: start #"); n != 2 {
		t.Errorf("log has %d start markers; want 2:\n%s", n, log)
	}
	if !strings.Contains(string(log), "--id n1 --listen 127.0.0.1:0 --data-dir") {
		t.Errorf("log lacks the flags the process got:\n%s", log)
	}
}

// TestQuit makes a process dump its goroutines into its log and exit.
func TestQuit(t *testing.T) {
	t.Setenv(fakeEnv, "1")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := New(Spec{Binary: self, ID: "n1", Addr: "127.0.0.1:0", DataDir: filepath.Join(dir, "data"), LogPath: filepath.Join(dir, "n1.log")})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t.Cleanup(func() { _ = p.Stop(context.Background(), time.Second) })
	if err := p.Quit(ctx); err == nil {
		t.Error("Quit before Start succeeded")
	}
	if err := p.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	// Wait until the runtime sleeps in select{}: its signal handlers are
	// in place then.
	waitState(t, p.PID(), "S")
	time.Sleep(50 * time.Millisecond)
	if err := p.Pause(); err != nil { // Quit must cope with a paused process
		t.Fatal(err)
	}
	if err := p.Quit(ctx); err != nil {
		t.Fatalf("Quit: %v", err)
	}
	if p.Running() {
		t.Error("Running() after Quit")
	}
	log, err := os.ReadFile(filepath.Join(dir, "n1.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "SIGQUIT") || !strings.Contains(string(log), "select (no cases)") {
		t.Errorf("log lacks the goroutine dump:\n%s", log)
	}
}
