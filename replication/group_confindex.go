// This file finds the log index of a group's latest configuration, which
// hashicorp/raft 1.7 knows but does not report: GetConfiguration's Index
// is always 0. It follows raft's own rule for which configuration is the
// latest: the last configuration entry in the log after the newest
// snapshot, or else the snapshot's configuration.

package replication

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// configScan records a search of the log for the latest configuration
// entry, so that the next search can stop where it began.
type configScan struct {
	// upTo and upToTerm identify the last entry searched. While the log
	// holds an entry at upTo of term upToTerm, every entry up to it is as
	// it was searched (raft's Log Matching property: only a suffix of a log
	// is ever replaced, and an entry's index and term fix every entry up to
	// it).
	upTo, upToTerm uint64
	// entry is the index of the latest configuration entry at or before
	// upTo and after the snapshot the search began at, 0 if there was none,
	// and conf its configuration.
	entry uint64
	conf  raft.Configuration
}

// latestConfiguration returns raft's latest configuration and the index of
// its entry. A configuration may change while it is looked up; then the
// lookup is repeated, for at most about a second.
func (g *Group) latestConfiguration(ctx context.Context) (uint64, raft.Configuration, error) {
	const attempts = 20
	backoff := time.Millisecond
	for attempt := 1; ; attempt++ {
		select {
		case <-g.stop:
			return 0, raft.Configuration{}, ErrShutdown
		default:
		}
		want := g.raft.GetConfiguration().Configuration()
		index, conf, err := g.findConfiguration()
		switch {
		case err == nil && slices.Equal(conf.Servers, want.Servers):
			return index, want, nil
		case err != nil && !errors.Is(err, raft.ErrLogNotFound):
			return 0, raft.Configuration{}, err
		case attempt == attempts:
			if err == nil {
				err = errors.New("the configuration raft reports is not the latest one in its log")
			}
			return 0, raft.Configuration{}, fmt.Errorf("configuration kept changing while it was read: %w", err)
		}
		// The log changed under the search: a configuration was added,
		// entries were compacted, or a snapshot is being installed.
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return 0, raft.Configuration{}, ctx.Err()
		case <-g.stop:
			t.Stop()
			return 0, raft.Configuration{}, ErrShutdown
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}

// findConfiguration returns the latest configuration in the log and the
// snapshot store, and its index: the last configuration entry after the
// newest snapshot, or else the snapshot's configuration, or else none
// (index 0). It fails with raft.ErrLogNotFound when entries it searches
// are compacted meanwhile.
func (g *Group) findConfiguration() (uint64, raft.Configuration, error) {
	g.confScan.Lock()
	defer g.confScan.Unlock()
	prev := &g.confScan.configScan

	snap := g.snaps.latest()
	last, err := g.logs.LastIndex()
	if err != nil {
		return 0, raft.Configuration{}, fmt.Errorf("reading the last log index: %w", err)
	}
	// Search the entries after the snapshot, and after the previous search
	// if the log still holds what it searched.
	from := snap.index
	reuse := prev.upTo > from && prev.upTo <= last && g.entryTerm(prev.upTo) == prev.upToTerm
	if reuse {
		from = prev.upTo
	}
	next := configScan{upTo: from}
	if reuse {
		next = *prev
	}
	for i := last; i > from; i-- {
		var l raft.Log
		if err := g.logs.GetLog(i, &l); err != nil {
			return 0, raft.Configuration{}, fmt.Errorf("reading log entry %d: %w", i, err)
		}
		if i == last {
			next.upTo, next.upToTerm = i, l.Term
		}
		if l.Type == raft.LogConfiguration {
			next.entry, next.conf = i, raft.DecodeConfiguration(l.Data)
			break
		}
	}
	if next.upToTerm != 0 {
		*prev = next
	}
	if next.entry > snap.index {
		return next.entry, next.conf, nil
	}
	return snap.confIndex, snap.conf, nil
}

// entryTerm returns the term of the log entry at index, 0 if there is none.
func (g *Group) entryTerm(index uint64) uint64 {
	var l raft.Log
	if err := g.logs.GetLog(index, &l); err != nil {
		return 0
	}
	return l.Term
}

// trackingSnapshotStore is a raft.SnapshotStore that remembers the newest
// snapshot's configuration, so that it need not be read from disk.
type trackingSnapshotStore struct {
	raft.SnapshotStore

	mu struct {
		sync.Mutex
		latest snapshotConfig
	}
}

// snapshotConfig is what a snapshot says of the configuration.
type snapshotConfig struct {
	// index is the snapshot's last log index; 0 when there is no snapshot.
	index     uint64
	confIndex uint64
	conf      raft.Configuration
	// size is the snapshot's length in bytes.
	size int64
}

func newTrackingSnapshotStore(s raft.SnapshotStore) (*trackingSnapshotStore, error) {
	t := &trackingSnapshotStore{SnapshotStore: s}
	metas, err := s.List()
	if err != nil {
		return nil, err
	}
	if len(metas) > 0 {
		t.record(metas[0].Index, metas[0].ConfigurationIndex, metas[0].Configuration, metas[0].Size)
	}
	return t, nil
}

// Create implements raft.SnapshotStore. The snapshot counts once its sink
// is closed without error.
func (t *trackingSnapshotStore) Create(version raft.SnapshotVersion, index, term uint64,
	conf raft.Configuration, confIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	sink, err := t.SnapshotStore.Create(version, index, term, conf, confIndex, trans)
	if err != nil {
		return nil, err
	}
	ts := &trackingSnapshotSink{SnapshotSink: sink}
	ts.closed = func() { t.record(index, confIndex, conf, ts.written) }
	return ts, nil
}

func (t *trackingSnapshotStore) record(index, confIndex uint64, conf raft.Configuration, size int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if index >= t.mu.latest.index {
		t.mu.latest = snapshotConfig{index: index, confIndex: confIndex, conf: conf.Clone(), size: size}
	}
}

// latest returns the newest snapshot's configuration.
func (t *trackingSnapshotStore) latest() snapshotConfig {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.mu.latest
}

type trackingSnapshotSink struct {
	raft.SnapshotSink
	closed  func()
	written int64 // bytes written so far; raft writes a sink from one goroutine
}

func (s *trackingSnapshotSink) Write(p []byte) (int, error) {
	n, err := s.SnapshotSink.Write(p)
	s.written += int64(n)
	return n, err
}

func (s *trackingSnapshotSink) Close() error {
	if err := s.SnapshotSink.Close(); err != nil {
		return err
	}
	s.closed()
	return nil
}
