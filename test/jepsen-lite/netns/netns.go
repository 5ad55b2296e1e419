// Package netns gives each node of a jepsen-lite cluster a host of its own:
// a Linux network namespace with its own address on a private /24, joined
// to the others by veth pairs and a bridge. The bridge lives in a "switch"
// namespace of its own, never in the root namespace, where Docker's
// iptables FORWARD rules can drop bridged traffic. The test process reaches
// the nodes through one more veth pair from the root namespace into the
// switch.
//
// Faults are made at the packet level with nftables rules inside a node's
// namespace that drop traffic to and from chosen peers, in both directions.
//
// Everything is named after a prefix, so that Cleanup can find and remove
// what a crashed run left behind, and only that. All of it needs root and
// the ip and nft commands.
package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Defaults of Config.
const (
	DefaultPrefix = "rkvj"
	DefaultSubnet = "10.77.0"
)

// cmdTimeout bounds every ip and nft command.
const cmdTimeout = 15 * time.Second

// Config configures a Network. The zero value of each field but Nodes
// takes its default.
type Config struct {
	// Prefix starts the name of every namespace and link made: at most 8
	// characters. Default DefaultPrefix.
	Prefix string
	// Subnet is the first three octets of the /24 the hosts live on, used
	// only inside the namespaces made and on the root end of the client
	// veth. The client gets .1, node i (from 0) gets .11+i. Default
	// DefaultSubnet.
	Subnet string
	// Nodes are the IDs of the hosts to make, one per node.
	Nodes []string
	// Logger logs every command at debug level. Default: discard.
	Logger *slog.Logger
}

func (c *Config) setDefaults() error {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.Subnet == "" {
		c.Subnet = DefaultSubnet
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case len(c.Prefix) > 8:
		return fmt.Errorf("netns: prefix %q: at most 8 characters", c.Prefix)
	case len(c.Nodes) == 0 || len(c.Nodes) > 200:
		return fmt.Errorf("netns: %d nodes: need 1 to 200", len(c.Nodes))
	}
	return nil
}

// Host is one node's host.
type Host struct {
	// ID is the node's ID.
	ID string
	// Netns is the name of its network namespace.
	Netns string
	// IP is its address.
	IP string
}

// Network is a set of hosts on one bridge. Its methods are safe for
// concurrent use only in that each call runs its own commands; callers
// serialize changes to the same host's rules.
type Network struct {
	cfg      Config
	hosts    []Host
	clientIP string
}

// Check reports whether this machine can make networks: root, and the ip
// and nft commands. The error says what is missing.
func Check() error {
	if os.Geteuid() != 0 {
		return errors.New("netns: needs root (network namespaces, nftables)")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("netns: needs the %s command: %w", tool, err)
		}
	}
	return nil
}

// Lock takes the machine-wide lock of prefix, so that two runs never make
// or remove the same namespaces at once. It waits until the lock is free or
// ctx ends. The returned function releases it.
func Lock(ctx context.Context, prefix string) (unlock func(), err error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	path := filepath.Join(os.TempDir(), "jepsen-lite-"+prefix+".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("netns: lock: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			_ = f.Close()
			return nil, fmt.Errorf("netns: lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("netns: lock %s held by another run: %w", path, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Create makes the switch namespace with its bridge, one namespace per node
// linked to it, and the client veth from the root namespace. It first
// removes whatever an earlier run with the same prefix left (see Cleanup).
// On error it removes what it made.
func Create(ctx context.Context, cfg Config) (*Network, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if err := Cleanup(ctx, cfg.Prefix, cfg.Logger); err != nil {
		return nil, err
	}
	n := &Network{cfg: cfg, clientIP: cfg.Subnet + ".1"}
	for i, id := range cfg.Nodes {
		n.hosts = append(n.hosts, Host{ID: id, Netns: fmt.Sprintf("%s-%d", cfg.Prefix, i+1), IP: fmt.Sprintf("%s.%d", cfg.Subnet, 11+i)})
	}
	if err := n.create(ctx); err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		return nil, errors.Join(err, Cleanup(cctx, cfg.Prefix, cfg.Logger))
	}
	return n, nil
}

func (n *Network) switchNS() string   { return n.cfg.Prefix + "-sw" }
func (n *Network) clientLink() string { return n.cfg.Prefix + "-c" }

func (n *Network) create(ctx context.Context) error {
	sw := n.switchNS()
	steps := [][]string{
		{"ip", "netns", "add", sw},
		{"ip", "-n", sw, "link", "set", "lo", "up"},
		{"ip", "-n", sw, "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", sw, "link", "set", "br0", "up"},
	}
	for i, h := range n.hosts {
		port := "p" + strconv.Itoa(i+1)
		steps = append(steps,
			[]string{"ip", "netns", "add", h.Netns},
			[]string{"ip", "link", "add", "eth0", "netns", h.Netns, "type", "veth", "peer", "name", port, "netns", sw},
			[]string{"ip", "-n", h.Netns, "addr", "add", h.IP + "/24", "dev", "eth0"},
			[]string{"ip", "-n", h.Netns, "link", "set", "lo", "up"},
			[]string{"ip", "-n", h.Netns, "link", "set", "eth0", "up"},
			[]string{"ip", "-n", sw, "link", "set", port, "master", "br0", "up"},
		)
	}
	c := n.clientLink()
	steps = append(steps,
		[]string{"ip", "link", "add", c, "type", "veth", "peer", "name", "pc", "netns", sw},
		[]string{"ip", "addr", "add", n.clientIP + "/24", "dev", c},
		[]string{"ip", "link", "set", c, "up"},
		[]string{"ip", "-n", sw, "link", "set", "pc", "master", "br0", "up"},
	)
	for _, s := range steps {
		if _, err := run(ctx, n.cfg.Logger, "", s...); err != nil {
			return err
		}
	}
	return nil
}

// Hosts returns the hosts, in the order of Config.Nodes.
func (n *Network) Hosts() []Host { return slices.Clone(n.hosts) }

// Host returns the host of node id.
func (n *Network) Host(id string) (Host, bool) {
	for _, h := range n.hosts {
		if h.ID == id {
			return h, true
		}
	}
	return Host{}, false
}

// ClientIP returns the address of the root namespace's end of the client
// veth: where the test process's connections come from. Faults never block
// it, so the test process reaches every node, as a Jepsen control node does.
func (n *Network) ClientIP() string { return n.clientIP }

// Block makes host id drop every packet to and from the peers' addresses,
// and only those: it replaces the host's earlier rules. No peers lifts
// them.
func (n *Network) Block(ctx context.Context, id string, peers []string) error {
	h, ok := n.Host(id)
	if !ok {
		return fmt.Errorf("netns: no host %q", id)
	}
	var ips []string
	for _, p := range peers {
		ph, ok := n.Host(p)
		if !ok {
			return fmt.Errorf("netns: no host %q", p)
		}
		ips = append(ips, ph.IP)
	}
	_, err := run(ctx, n.cfg.Logger, nftScript(ips), "ip", "netns", "exec", h.Netns, "nft", "-f", "-")
	if err != nil {
		return fmt.Errorf("netns: rules of %s: %w", id, err)
	}
	return nil
}

// nftTable is the nftables table made in each node's namespace.
const nftTable = "jepsen_lite"

// nftScript returns an nft script that atomically replaces the table with
// one that drops traffic from and to ips (none: an empty table).
func nftScript(ips []string) string {
	var b strings.Builder
	// Declaring the table first makes the delete succeed when it does not
	// exist yet; nft -f applies the whole script as one transaction.
	fmt.Fprintf(&b, "table inet %s\ndelete table inet %s\n", nftTable, nftTable)
	if len(ips) == 0 {
		return b.String()
	}
	set := strings.Join(ips, ", ")
	fmt.Fprintf(&b, "table inet %s {\n", nftTable)
	fmt.Fprintf(&b, "\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n\t\tip saddr { %s } drop\n\t}\n", set)
	fmt.Fprintf(&b, "\tchain output {\n\t\ttype filter hook output priority 0; policy accept;\n\t\tip daddr { %s } drop\n\t}\n", set)
	b.WriteString("}\n")
	return b.String()
}

// Partition cuts the network into groups: two nodes can talk when some
// group holds both. A node in no group is cut off from every other node.
// Groups may overlap (a bridge). It replaces every earlier rule.
func (n *Network) Partition(ctx context.Context, groups [][]string) error {
	ids := make([]string, len(n.hosts))
	for i, h := range n.hosts {
		ids[i] = h.ID
	}
	var errs []error
	for id, peers := range Blocked(ids, groups) {
		errs = append(errs, n.Block(ctx, id, peers))
	}
	return errors.Join(errs...)
}

// Heal lifts every rule on every host.
func (n *Network) Heal(ctx context.Context) error {
	var errs []error
	for _, h := range n.hosts {
		errs = append(errs, n.Block(ctx, h.ID, nil))
	}
	return errors.Join(errs...)
}

// Blocked returns, for each node, the peers it must not reach when the
// network is cut into groups: those it shares no group with. Every node is
// a key, with no peers when it reaches them all.
func Blocked(nodes []string, groups [][]string) map[string][]string {
	out := make(map[string][]string, len(nodes))
	for _, a := range nodes {
		out[a] = []string{}
		for _, b := range nodes {
			if a == b {
				continue
			}
			together := false
			for _, g := range groups {
				if slices.Contains(g, a) && slices.Contains(g, b) {
					together = true
					break
				}
			}
			if !together {
				out[a] = append(out[a], b)
			}
		}
	}
	return out
}

// Close removes the network, killing any process still in its namespaces.
func (n *Network) Close(ctx context.Context) error {
	return Cleanup(ctx, n.cfg.Prefix, n.cfg.Logger)
}

// Cleanup removes every namespace whose name starts with prefix+"-", after
// killing (SIGKILL, by PID) the processes inside it, and the root end of
// the client veth. A crashed run leaves these behind; nothing else is
// touched. It is idempotent.
func Cleanup(ctx context.Context, prefix string, log *slog.Logger) error {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	out, err := run(ctx, log, "", "ip", "netns", "list")
	if err != nil {
		return err
	}
	var spaces []string
	for _, line := range strings.Split(out, "\n") {
		fields := strings.Fields(line)
		if len(fields) > 0 && strings.HasPrefix(fields[0], prefix+"-") {
			spaces = append(spaces, fields[0])
		}
	}
	var errs []error
	for _, ns := range spaces {
		pids, err := run(ctx, log, "", "ip", "netns", "pids", ns)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, f := range strings.Fields(pids) {
			pid, err := strconv.Atoi(f)
			if err != nil || pid <= 1 || pid == os.Getpid() {
				continue
			}
			log.Info("netns: killing leftover process", "netns", ns, "pid", pid)
			if err := killAndWait(ctx, pid); err != nil {
				errs = append(errs, fmt.Errorf("netns: kill %d in %s: %w", pid, ns, err))
			}
		}
	}
	for _, ns := range spaces {
		log.Debug("netns: removing", "netns", ns)
		if _, err := run(ctx, log, "", "ip", "netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	// Removing the switch namespace removes the veth's other end and so
	// this one, but the kernel does it asynchronously; a half-made network
	// may have left it alone. Wait until it is gone, so that the next
	// Create can make it again.
	link := prefix + "-c"
	deadline := time.Now().Add(10 * time.Second)
	for linkExists(ctx, log, link) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			errs = append(errs, fmt.Errorf("netns: link %s still there", link))
			break
		}
		_, _ = run(ctx, log, "", "ip", "link", "del", link) // it may vanish first
		time.Sleep(100 * time.Millisecond)
	}
	return errors.Join(errs...)
}

// linkExists reports whether the root namespace has a link called name.
func linkExists(ctx context.Context, log *slog.Logger, name string) bool {
	_, err := run(ctx, log, "", "ip", "link", "show", name)
	return err == nil
}

// killAndWait sends SIGKILL to pid and waits until it is gone or a zombie.
func killAndWait(ctx context.Context, pid int) error {
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return nil // gone
		}
		// The state follows the parenthesized command name.
		if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("process %d still alive after SIGKILL", pid)
}

// run runs a command, bounded by cmdTimeout, with stdin, and returns its
// standard output. The error holds the standard error.
func run(ctx context.Context, log *slog.Logger, stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.WaitDelay = time.Second
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	log.Debug("netns: run", "cmd", strings.Join(args, " "))
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
