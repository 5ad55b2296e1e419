package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ringkv/ringkv/raftstore"
	"github.com/ringkv/ringkv/replication"
)

// The kinds of shared Raft log (Config.RaftLog).
const (
	// RaftLogBolt keeps the shard groups' logs in one bbolt file,
	// DataDir/raft.db (raftstore.Store).
	RaftLogBolt = "bolt"
	// RaftLogWAL keeps them in an append-only log of segment files in the
	// directory DataDir/raft-wal (raftstore.WAL).
	RaftLogWAL = "wal"
	// RaftLogAuto uses the kind the data directory holds, and the WAL in a
	// new one, so that nodes created before the WAL keep their bolt log.
	RaftLogAuto = "auto"
)

// The names of the shared logs in the data directory.
const (
	boltLogName = "raft.db"
	walLogName  = "raft-wal"
)

// raftLog is the store that holds the Raft logs of every shard replica of
// a node: a raftstore.Store or a raftstore.WAL.
type raftLog interface {
	// group returns the log and stable store of group id.
	group(id uint64) (replication.LogStore, error)
	DeleteGroup(id uint64) error
	// Groups returns the IDs of the groups that have data.
	Groups() ([]uint64, error)
	// Stats counts the durable commits and the writes they carried.
	Stats() raftstore.Stats
	Close() error
}

type boltLog struct{ *raftstore.Store }

func (l boltLog) group(id uint64) (replication.LogStore, error) {
	g, err := l.Group(id)
	if err != nil {
		return nil, err
	}
	return g, nil
}

type walLog struct{ *raftstore.WAL }

func (l walLog) group(id uint64) (replication.LogStore, error) {
	g, err := l.Group(id)
	if err != nil {
		return nil, err
	}
	return g, nil
}

// openRaftLog opens the shared Raft log of the given kind (RaftLogAuto:
// the kind dataDir holds, the WAL for a new one) in dataDir, and returns
// the kind it opened,
// creating it if needed. It refuses a data directory that holds the other
// kind's log: opening would start every shard replica empty, as if it had
// never voted nor acknowledged an entry, which can lose committed writes.
func openRaftLog(dataDir, kind string) (raftLog, string, error) {
	bolt := filepath.Join(dataDir, boltLogName)
	wal := filepath.Join(dataDir, walLogName)
	hasBolt, err := exists(bolt)
	if err != nil {
		return nil, "", err
	}
	hasWAL, err := exists(wal)
	if err != nil {
		return nil, "", err
	}
	if kind == RaftLogAuto {
		kind = RaftLogWAL
		if hasBolt && !hasWAL {
			kind = RaftLogBolt
		}
	}
	switch {
	case hasBolt && hasWAL:
		return nil, "", fmt.Errorf("data directory %s holds both a bolt raft log (%s) and a wal raft log (%s): "+
			"refusing to start; keep the one the node last ran with", dataDir, bolt, wal)
	case kind == RaftLogWAL && hasBolt:
		return nil, "", fmt.Errorf("data directory %s holds a bolt raft log (%s), but the node is configured with raft log %q (%s): "+
			"refusing to start with an empty wal log; start it with raft log %q (kvnode --raft-log %s)",
			dataDir, bolt, RaftLogWAL, wal, RaftLogBolt, RaftLogBolt)
	case kind != RaftLogWAL && hasWAL:
		return nil, "", fmt.Errorf("data directory %s holds a wal raft log (%s), but the node is configured with raft log %q (%s): "+
			"refusing to start with an empty bolt log; start it with raft log %q (kvnode --raft-log %s)",
			dataDir, wal, RaftLogBolt, bolt, RaftLogWAL, RaftLogWAL)
	}
	if kind == RaftLogWAL {
		w, err := raftstore.OpenWAL(wal, raftstore.WALOptions{})
		if err != nil {
			return nil, "", err
		}
		return walLog{w}, RaftLogWAL, nil
	}
	s, err := raftstore.Open(bolt, raftstore.Options{})
	if err != nil {
		return nil, "", err
	}
	return boltLog{s}, RaftLogBolt, nil
}

// raftLogPath returns where a shared log of kind (RaftLogWAL or
// RaftLogBolt) lives in dataDir.
func raftLogPath(dataDir, kind string) string {
	if kind == RaftLogWAL {
		return filepath.Join(dataDir, walLogName)
	}
	return filepath.Join(dataDir, boltLogName)
}

func exists(path string) (bool, error) {
	_, err := os.Lstat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("data directory: %w", err)
}
