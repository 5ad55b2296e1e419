package netns

import (
	"context"
	"fmt"
	"net"
	"os"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestBlocked(t *testing.T) {
	nodes := []string{"a", "b", "c", "d", "e"}
	tests := []struct {
		name   string
		groups [][]string
		want   map[string][]string
	}{
		{"one group", [][]string{nodes}, map[string][]string{"a": {}, "b": {}, "c": {}, "d": {}, "e": {}}},
		{"halves", [][]string{{"a", "b"}, {"c", "d", "e"}}, map[string][]string{
			"a": {"c", "d", "e"}, "b": {"c", "d", "e"}, "c": {"a", "b"}, "d": {"a", "b"}, "e": {"a", "b"}}},
		{"isolated node left out", [][]string{{"b", "c", "d", "e"}}, map[string][]string{
			"a": {"b", "c", "d", "e"}, "b": {"a"}, "c": {"a"}, "d": {"a"}, "e": {"a"}}},
		{"bridge", [][]string{{"a", "b", "c"}, {"c", "d", "e"}}, map[string][]string{
			"a": {"d", "e"}, "b": {"d", "e"}, "c": {}, "d": {"a", "b"}, "e": {"a", "b"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Blocked(nodes, tt.groups); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Blocked(%v) = %v; want %v", tt.groups, got, tt.want)
			}
		})
	}
}

func TestNftScript(t *testing.T) {
	heal := nftScript(nil)
	if want := "table inet jepsen_lite\ndelete table inet jepsen_lite\n"; heal != want {
		t.Errorf("nftScript(nil) = %q; want %q", heal, want)
	}
	s := nftScript([]string{"10.0.0.2", "10.0.0.3"})
	for _, want := range []string{"ip saddr { 10.0.0.2, 10.0.0.3 } drop", "ip daddr { 10.0.0.2, 10.0.0.3 } drop", "hook input", "hook output"} {
		if !strings.Contains(s, want) {
			t.Errorf("nftScript lacks %q:\n%s", want, s)
		}
	}
}

// inNetns runs fn on an OS thread that has joined namespace ns. Sockets
// opened by fn stay in ns. The thread is thrown away afterwards: the
// goroutine ends while locked to it.
func inNetns(ns string, fn func()) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked
		f, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		fn()
		errc <- nil
	}()
	return <-errc
}

// listenIn opens a TCP listener on addr inside namespace ns that accepts
// and closes connections until the test ends.
func listenIn(t *testing.T, ns, addr string) {
	t.Helper()
	var l net.Listener
	var lerr error
	if err := inNetns(ns, func() { l, lerr = net.Listen("tcp", addr) }); err != nil || lerr != nil {
		t.Fatalf("listen in %s: %v %v", ns, err, lerr)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	t.Cleanup(func() { _ = l.Close() })
}

// reachableFrom reports whether a TCP connection from namespace ns to addr
// opens within 500ms.
func reachableFrom(t *testing.T, ns, addr string) bool {
	t.Helper()
	ok := false
	if err := inNetns(ns, func() { ok = reachable(addr) }); err != nil {
		t.Fatal(err)
	}
	return ok
}

// reachable reports whether a TCP connection to addr opens within 500ms.
func reachable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// TestNetwork makes two hosts, checks that the test process reaches them,
// cuts one off from the other and heals it, and removes everything. It
// uses its own prefix and subnet, so it never meets a real run's network.
func TestNetwork(t *testing.T) {
	if err := Check(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const prefix = "rkvjt"
	unlock, err := Lock(ctx, prefix)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	n, err := Create(ctx, Config{Prefix: prefix, Subnet: "10.78.0", Nodes: []string{"a", "b"}})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() {
		if err := n.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	a, _ := n.Host("a")
	b, _ := n.Host("b")
	if a.IP != "10.78.0.11" || b.IP != "10.78.0.12" || n.ClientIP() != "10.78.0.1" {
		t.Fatalf("addresses a=%s b=%s client=%s; want 10.78.0.11, .12, .1", a.IP, b.IP, n.ClientIP())
	}
	listenIn(t, a.Netns, a.IP+":9000")

	if !reachable(a.IP + ":9000") {
		t.Fatal("the test process cannot reach host a")
	}
	if !reachableFrom(t, b.Netns, a.IP+":9000") {
		t.Fatal("host b cannot reach host a")
	}
	if err := n.Block(ctx, "a", []string{"b"}); err != nil {
		t.Fatalf("Block: %v", err)
	}
	if reachableFrom(t, b.Netns, a.IP+":9000") {
		t.Error("host b reaches host a through a's rules")
	}
	if !reachable(a.IP + ":9000") {
		t.Error("blocking b on a also cut the test process off")
	}
	out, err := run(ctx, n.cfg.Logger, "", "ip", "netns", "exec", a.Netns, "nft", "list", "ruleset")
	if err != nil || !strings.Contains(out, b.IP) {
		t.Errorf("a's ruleset does not name b (%v):\n%s", err, out)
	}
	if err := n.Heal(ctx); err != nil {
		t.Fatalf("Heal: %v", err)
	}
	if !reachableFrom(t, b.Netns, a.IP+":9000") {
		t.Error("host b cannot reach host a after Heal")
	}
	out, err = run(ctx, n.cfg.Logger, "", "ip", "netns", "exec", a.Netns, "nft", "list", "ruleset")
	if err != nil || strings.Contains(out, nftTable) {
		t.Errorf("a's ruleset after Heal (%v):\n%s", err, out)
	}
	if err := n.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	out, _ = run(ctx, n.cfg.Logger, "", "ip", "netns", "list")
	if strings.Contains(out, prefix+"-") {
		t.Errorf("namespaces left after Close:\n%s", out)
	}
	if _, err := run(ctx, n.cfg.Logger, "", "ip", "link", "show", prefix+"-c"); err == nil {
		t.Errorf("client link %s-c left after Close", prefix)
	}
}

// TestAddRemoveHost grows a running network by a host, checks that the
// test process and the first host reach it and that a partition covers it,
// removes it, and checks that its name and address are never reused.
func TestAddRemoveHost(t *testing.T) {
	if err := Check(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const prefix = "rkvjt"
	unlock, err := Lock(ctx, prefix)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	n, err := Create(ctx, Config{Prefix: prefix, Subnet: "10.78.0", Nodes: []string{"a"}})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() {
		if err := n.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	a, _ := n.Host("a")
	b, err := n.AddHost(ctx, "b")
	if err != nil {
		t.Fatalf("AddHost(b): %v", err)
	}
	if b.IP != "10.78.0.12" || b.Netns != prefix+"-2" {
		t.Fatalf("AddHost(b) = %+v; want %s-2 at 10.78.0.12", b, prefix)
	}
	if _, err := n.AddHost(ctx, "b"); err == nil {
		t.Error("AddHost(b) twice succeeded")
	}
	listenIn(t, b.Netns, b.IP+":9000")
	if !reachable(b.IP + ":9000") {
		t.Fatal("the test process cannot reach the added host")
	}
	if !reachableFrom(t, a.Netns, b.IP+":9000") {
		t.Fatal("host a cannot reach the added host")
	}
	if err := n.Partition(ctx, [][]string{{"a"}, {"b"}}); err != nil {
		t.Fatalf("Partition: %v", err)
	}
	if reachableFrom(t, a.Netns, b.IP+":9000") {
		t.Error("host a reaches the added host across a partition")
	}
	if err := n.Heal(ctx); err != nil {
		t.Fatalf("Heal: %v", err)
	}

	if err := n.RemoveHost(ctx, "b"); err != nil {
		t.Fatalf("RemoveHost(b): %v", err)
	}
	if _, ok := n.Host("b"); ok || len(n.Hosts()) != 1 {
		t.Errorf("after RemoveHost(b): hosts %+v", n.Hosts())
	}
	out, _ := run(ctx, n.cfg.Logger, "", "ip", "netns", "list")
	if strings.Contains(out, b.Netns+" ") || strings.Contains(out, b.Netns+"\n") {
		t.Errorf("namespace %s left after RemoveHost:\n%s", b.Netns, out)
	}
	if err := n.RemoveHost(ctx, "b"); err == nil {
		t.Error("RemoveHost(b) twice succeeded")
	}
	if err := n.Heal(ctx); err != nil {
		t.Errorf("Heal after RemoveHost: %v", err)
	}
	c, err := n.AddHost(ctx, "c")
	if err != nil {
		t.Fatalf("AddHost(c): %v", err)
	}
	if c.IP != "10.78.0.13" || c.Netns != prefix+"-3" {
		t.Errorf("AddHost(c) after removing b = %+v; want a fresh name and address (%s-3, 10.78.0.13)", c, prefix)
	}
}
