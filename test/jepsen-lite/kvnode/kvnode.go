// Package kvnode runs ringkv's kvnode daemon as real processes, each inside
// the network namespace of its host, and makes the process faults of
// jepsen-lite: kill -9 and restart with the same data directory, SIGSTOP
// and SIGCONT; and SIGQUIT, for a stack dump of a node that got stuck.
// Every signal goes to a PID this package started.
package kvnode

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Spec describes one node process.
type Spec struct {
	// Binary is the path of the kvnode binary.
	Binary string
	// ID is the node's ID (--id).
	ID string
	// Netns is the network namespace to run in ("" for the caller's).
	Netns string
	// Addr is the host:port it serves on (--listen).
	Addr string
	// DataDir is its data directory (--data-dir), kept across restarts.
	DataDir string
	// LogPath is the file its standard output and error are appended to,
	// across restarts.
	LogPath string
	// Args are further flags: --initial-cluster, timers, --shards, ...
	Args []string
}

// Process is one node's process; it may be started again after it stops.
// Its methods are safe for concurrent use.
type Process struct {
	spec Spec

	mu struct {
		sync.Mutex
		cmd    *exec.Cmd     // nil before the first start
		exited chan struct{} // closed when the current process has exited
		paused bool
		starts int
	}
}

// New returns a Process for spec; it does not start it.
func New(spec Spec) *Process {
	return &Process{spec: spec}
}

// ID returns the node's ID.
func (p *Process) ID() string { return p.spec.ID }

// Addr returns the address the node serves on.
func (p *Process) Addr() string { return p.spec.Addr }

// Start starts the process unless it is running.
func (p *Process) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.runningLocked() {
		return nil
	}
	if err := os.MkdirAll(p.spec.DataDir, 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p.spec.LogPath), 0o755); err != nil {
		return err
	}
	log, err := os.OpenFile(p.spec.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close() // the child has its own descriptor
	args := append([]string{"--id", p.spec.ID, "--listen", p.spec.Addr, "--data-dir", p.spec.DataDir}, p.spec.Args...)
	name := p.spec.Binary
	if p.spec.Netns != "" {
		// ip netns exec enters the namespace and execs kvnode in the same
		// process, so the PID is kvnode's own.
		args = append([]string{"netns", "exec", p.spec.Netns, p.spec.Binary}, args...)
		name = "ip"
	}
	p.mu.starts++
	fmt.Fprintf(log, "=== jepsen-lite: start #%d of %s at %s: %s %s\n", p.mu.starts, p.spec.ID,
		time.Now().Format(time.RFC3339Nano), name, strings.Join(args, " "))
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true,            // a terminal's Ctrl-C reaches us, not the nodes
		Pdeathsig: syscall.SIGKILL, // best effort if we die without cleaning up
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("kvnode: start %s: %w", p.spec.ID, err)
	}
	exited := make(chan struct{})
	go func() { // owned by the process: ends when it exits
		_ = cmd.Wait()
		close(exited)
	}()
	p.mu.cmd, p.mu.exited, p.mu.paused = cmd, exited, false
	return nil
}

func (p *Process) runningLocked() bool {
	if p.mu.cmd == nil {
		return false
	}
	select {
	case <-p.mu.exited:
		return false
	default:
		return true
	}
}

// Running reports whether the process is running (paused counts).
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.runningLocked()
}

// Paused reports whether the process is stopped by SIGSTOP.
func (p *Process) Paused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.runningLocked() && p.mu.paused
}

// PID returns the PID of the running process, 0 if none.
func (p *Process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.runningLocked() {
		return 0
	}
	return p.mu.cmd.Process.Pid
}

// ErrNotRunning is returned by the signals when the process is not running.
var ErrNotRunning = errors.New("kvnode: not running")

// signal sends sig to the running process and returns its exit channel.
func (p *Process) signal(sig syscall.Signal) (<-chan struct{}, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.runningLocked() {
		return nil, fmt.Errorf("%s: %w", p.spec.ID, ErrNotRunning)
	}
	if err := p.mu.cmd.Process.Signal(sig); err != nil {
		return nil, fmt.Errorf("kvnode: signal %v to %s: %w", sig, p.spec.ID, err)
	}
	switch sig {
	case syscall.SIGSTOP:
		p.mu.paused = true
	case syscall.SIGCONT:
		p.mu.paused = false
	}
	return p.mu.exited, nil
}

// Kill sends SIGKILL and waits until the process has exited or ctx ends.
func (p *Process) Kill(ctx context.Context) error {
	exited, err := p.signal(syscall.SIGKILL)
	if err != nil {
		return err
	}
	select {
	case <-exited:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("kvnode: %s did not exit after SIGKILL: %w", p.spec.ID, ctx.Err())
	}
}

// Quit sends SIGCONT (in case it is paused) and SIGQUIT, on which a Go
// program writes every goroutine's stack to its standard error (the log)
// and exits, and waits until the process has exited or ctx ends. It is
// how a run keeps the state of nodes that got stuck.
func (p *Process) Quit(ctx context.Context) error {
	if _, err := p.signal(syscall.SIGCONT); err != nil {
		return err
	}
	exited, err := p.signal(syscall.SIGQUIT)
	if err != nil {
		return err
	}
	select {
	case <-exited:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("kvnode: %s did not exit after SIGQUIT: %w", p.spec.ID, ctx.Err())
	}
}

// Pause stops the process with SIGSTOP.
func (p *Process) Pause() error {
	_, err := p.signal(syscall.SIGSTOP)
	return err
}

// Resume continues a paused process with SIGCONT.
func (p *Process) Resume() error {
	_, err := p.signal(syscall.SIGCONT)
	return err
}

// Stop shuts the process down: SIGCONT in case it is paused, SIGTERM, and
// SIGKILL if it has not exited after grace or when ctx ends. Stopping a
// process that is not running does nothing.
func (p *Process) Stop(ctx context.Context, grace time.Duration) error {
	if _, err := p.signal(syscall.SIGCONT); errors.Is(err, ErrNotRunning) {
		return nil
	}
	exited, err := p.signal(syscall.SIGTERM)
	if errors.Is(err, ErrNotRunning) {
		return nil
	}
	if err == nil {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-exited:
			return nil
		case <-t.C:
		case <-ctx.Done():
		}
	}
	kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := p.Kill(kctx); err != nil && !errors.Is(err, ErrNotRunning) {
		return err
	}
	return nil
}
