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
	"sync"
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
	// veth. The client gets .1, the i-th host made (from 0, AddHost's
	// included) gets .11+i. Default DefaultSubnet.
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
	case len(c.Nodes) == 0 || len(c.Nodes) > maxHosts:
		return fmt.Errorf("netns: %d nodes: need 1 to %d", len(c.Nodes), maxHosts)
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

// Network is a set of hosts on one bridge; hosts may be added and removed
// while it runs (AddHost, RemoveHost). Its methods are safe for concurrent
// use in that each call sees a consistent list of hosts and runs its own
// commands; callers serialize changes to the same host's rules, and do not
// partition the network while they remove a host.
type Network struct {
	cfg      Config
	clientIP string

	mu struct {
		sync.Mutex
		hosts []Host // the hosts there are now, in the order made
		made  int    // hosts ever made: the next one is number made+1
	}
}

// maxHosts bounds the hosts a Network ever makes: host i (from 0) gets
// .11+i, and the last octet stops at 254.
const maxHosts = 244

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
	for _, id := range cfg.Nodes {
		n.mu.hosts = append(n.mu.hosts, n.nextHostLocked(id))
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

// nextHostLocked names the next host made: namespace prefix-N and address
// .10+N for the N-th host ever made. Numbers are never reused, so a host
// that replaces a removed one never takes its name or address.
func (n *Network) nextHostLocked(id string) Host {
	n.mu.made++
	return Host{ID: id, Netns: fmt.Sprintf("%s-%d", n.cfg.Prefix, n.mu.made), IP: fmt.Sprintf("%s.%d", n.cfg.Subnet, 10+n.mu.made)}
}

func (n *Network) create(ctx context.Context) error {
	sw := n.switchNS()
	steps := [][]string{
		{"ip", "netns", "add", sw},
		{"ip", "-n", sw, "link", "set", "lo", "up"},
		{"ip", "-n", sw, "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", sw, "link", "set", "br0", "up"},
	}
	for _, h := range n.mu.hosts {
		steps = append(steps, n.hostSteps(h)...)
	}
	c := n.clientLink()
	steps = append(steps,
		[]string{"ip", "link", "add", c, "type", "veth", "peer", "name", "pc", "netns", sw},
		[]string{"ip", "addr", "add", n.clientIP + "/24", "dev", c},
		[]string{"ip", "link", "set", c, "up"},
		[]string{"ip", "-n", sw, "link", "set", "pc", "master", "br0", "up"},
	)
	return n.runSteps(ctx, steps)
}

// hostSteps returns the commands that make h's namespace and plug it into
// the bridge: a veth pair, eth0 inside h, p<N> on the bridge (N from h's
// namespace name).
func (n *Network) hostSteps(h Host) [][]string {
	port := "p" + strings.TrimPrefix(h.Netns, n.cfg.Prefix+"-")
	sw := n.switchNS()
	return [][]string{
		{"ip", "netns", "add", h.Netns},
		{"ip", "link", "add", "eth0", "netns", h.Netns, "type", "veth", "peer", "name", port, "netns", sw},
		{"ip", "-n", h.Netns, "addr", "add", h.IP + "/24", "dev", "eth0"},
		{"ip", "-n", h.Netns, "link", "set", "lo", "up"},
		{"ip", "-n", h.Netns, "link", "set", "eth0", "up"},
		{"ip", "-n", sw, "link", "set", port, "master", "br0", "up"},
	}
}

func (n *Network) runSteps(ctx context.Context, steps [][]string) error {
	for _, s := range steps {
		if _, err := run(ctx, n.cfg.Logger, "", s...); err != nil {
			return err
		}
	}
	return nil
}

// AddHost makes a host for node id while the network runs: a namespace of
// its own plugged into the bridge, on the next unused address, reachable
// at once from every host and from the test process (they share the /24,
// so nothing needs routing). A partition in place does not cover it until
// the next Partition. On error nothing of it is left.
func (n *Network) AddHost(ctx context.Context, id string) (Host, error) {
	n.mu.Lock()
	if slices.ContainsFunc(n.mu.hosts, func(h Host) bool { return h.ID == id }) {
		n.mu.Unlock()
		return Host{}, fmt.Errorf("netns: host %q exists", id)
	}
	if n.mu.made >= maxHosts {
		n.mu.Unlock()
		return Host{}, fmt.Errorf("netns: %d hosts made: no address left", n.mu.made)
	}
	h := n.nextHostLocked(id)
	n.mu.Unlock()
	if err := n.runSteps(ctx, n.hostSteps(h)); err != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cmdTimeout)
		defer cancel()
		if _, derr := run(dctx, n.cfg.Logger, "", "ip", "netns", "del", h.Netns); derr != nil {
			n.cfg.Logger.Debug("netns: removing half-made host", "netns", h.Netns, "err", derr)
		}
		return Host{}, fmt.Errorf("netns: host %s: %w", id, err)
	}
	n.mu.Lock()
	n.mu.hosts = append(n.mu.hosts, h)
	n.mu.Unlock()
	return h, nil
}

// RemoveHost removes node id's host: it leaves the host list at once (no
// later Partition or Heal touches it), then every process still inside is
// killed (SIGKILL, by PID) and the namespace deleted, which deletes its
// veth pair. The other hosts' rules may still name its address; they are
// harmless, and the next Partition or Heal replaces them.
func (n *Network) RemoveHost(ctx context.Context, id string) error {
	n.mu.Lock()
	i := slices.IndexFunc(n.mu.hosts, func(h Host) bool { return h.ID == id })
	if i < 0 {
		n.mu.Unlock()
		return fmt.Errorf("netns: no host %q", id)
	}
	h := n.mu.hosts[i]
	n.mu.hosts = slices.Delete(n.mu.hosts, i, i+1)
	n.mu.Unlock()
	return removeNamespaces(ctx, n.cfg.Logger, []string{h.Netns})
}

// Hosts returns the hosts there are now, in the order made (Config.Nodes
// first).
func (n *Network) Hosts() []Host {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.mu.hosts)
}

// Host returns the host of node id.
func (n *Network) Host(id string) (Host, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, h := range n.mu.hosts {
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
	hosts := n.Hosts()
	ids := make([]string, len(hosts))
	for i, h := range hosts {
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
	for _, h := range n.Hosts() {
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
	errs := []error{removeNamespaces(ctx, log, spaces)}
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

// removeNamespaces kills (SIGKILL, by PID) every process inside the
// namespaces, then deletes them.
func removeNamespaces(ctx context.Context, log *slog.Logger, spaces []string) error {
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
