package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/ringkv/ringkv/cluster"
)

// ProposeMeta implements rpc.AuthAdmin: it commits a metadata command
// through the metadata leader and waits until this node has applied it,
// so that a change made through this node is in force on it when the call
// returns. (Other nodes apply it within their replication lag.)
func (n *Node) ProposeMeta(ctx context.Context, cmd []byte) (uint64, error) {
	epoch, err := n.proposeMeta(ctx, cmd)
	if err != nil {
		return epoch, err
	}
	for {
		changed := n.metaSM.Changed()
		if n.metaSM.Current().Epoch >= epoch {
			return epoch, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return epoch, fmt.Errorf("metadata epoch %d committed but not applied here yet: %w", epoch, ctx.Err())
		case <-n.stop:
			return epoch, fmt.Errorf("metadata epoch %d committed; node stopping", epoch)
		}
	}
}

// CanEnforceAuth implements rpc.AuthAdmin. Without TLS nothing tells a
// node from a client, so a client could call the internal services (which
// replicate and forward without checking users) and auth would protect
// nothing: enabling it is refused.
func (n *Node) CanEnforceAuth() error {
	if !n.cfg.TLS.Enabled() {
		return fmt.Errorf("%w: node %s serves without TLS, so it cannot tell a node from a client and keep clients out of the internal services; start every node with TLS (--cacert, --cert, --key) before enabling auth", cluster.ErrAuthRefused, n.cfg.ID)
	}
	return nil
}

// authMarker is the file in the data directory that exists while this
// node last saw auth enabled. After a restart a node's metadata is stale
// until it has caught up with the metadata group's log (its own log
// entries are applied only once a leader says they are committed); with
// the marker present, the node refuses client calls until then, rather
// than enforce an old auth state (or none).
const authMarker = "auth-enabled"

// authGate makes a restarted node fail closed until its metadata is
// current (see authMarker).
type authGate struct {
	marker string
	start  time.Time
	// stale is set at start when the marker exists and cleared, for good,
	// once the metadata group has applied every entry its leader reports
	// committed.
	stale atomic.Bool
}

func newAuthGate(dataDir string) *authGate {
	g := &authGate{marker: filepath.Join(dataDir, authMarker), start: time.Now()}
	if _, err := os.Stat(g.marker); err == nil {
		g.stale.Store(true)
	}
	return g
}

// MetadataCurrent implements rpc.AuthState: false while this node, which
// saw auth enabled before it restarted, has not caught up with the
// metadata log.
func (n *Node) MetadataCurrent() bool {
	if !n.authGate.stale.Load() {
		return true
	}
	if n.meta == nil {
		return false // still starting
	}
	s := n.meta.Stats()
	heard := s.Leader || s.LastContact.After(n.authGate.start)
	if heard && s.CommitIndex > 0 && s.AppliedIndex >= s.CommitIndex {
		n.authGate.stale.Store(false)
		return true
	}
	return false
}

// authMarkerLoop keeps the auth marker in step with the metadata, once the
// metadata is current. Until then it polls, since the metadata becomes
// current as its log is applied, which need not change the state; after,
// only a change of the metadata wakes it.
func (n *Node) authMarkerLoop() {
	defer n.wg.Done()
	synced, has := false, false // whether the marker exists, once known
	for {
		changed := n.metaSM.Changed()
		var poll <-chan time.Time
		if !n.MetadataCurrent() {
			poll = time.After(100 * time.Millisecond)
		} else if enabled := n.metaSM.Current().Auth.Enabled; !synced || enabled != has {
			if err := n.syncAuthMarker(enabled); err != nil {
				n.logger.Error("cannot record whether auth is enabled in the data directory", "err", err)
				poll = time.After(time.Second)
			} else {
				synced, has = true, enabled
			}
		}
		select {
		case <-n.stop:
			return
		case <-changed:
		case <-poll:
		}
	}
}

// syncAuthMarker creates or removes the marker to match enabled.
func (n *Node) syncAuthMarker(enabled bool) error {
	_, err := os.Stat(n.authGate.marker)
	has := err == nil
	switch {
	case enabled && !has:
		return os.WriteFile(n.authGate.marker, []byte("auth was enabled when this node last looked\n"), 0o644)
	case !enabled && has:
		return os.Remove(n.authGate.marker)
	}
	return nil
}
