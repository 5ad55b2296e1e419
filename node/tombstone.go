package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ringkv/ringkv/shard"
)

// A tombstone file, <shard dir>.tombstone, holds the metadata epoch at
// which the node dropped its replica of the shard. It outlives the
// replica's data, which is deleted.
const tombstoneSuffix = ".tombstone"

func writeTombstone(shardDir string, epoch uint64) error {
	path := shardDir + tombstoneSuffix
	tmp := path + ".tmp"
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("tombstone: %w", err)
	}
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("tombstone: %w", err)
	}
	_, werr := fmt.Fprintf(f, "%d\n", epoch)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("tombstone: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("tombstone: %w", err)
	}
	return nil
}

// readTombstones loads every tombstone under dir, by shard.
func readTombstones(dir string) (map[shard.ID]uint64, error) {
	out := map[shard.ID]uint64{}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading tombstones: %w", err)
	}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), tombstoneSuffix)
		if !ok {
			continue
		}
		id, err := strconv.ParseUint(name, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("tombstone %s: bad shard number", e.Name())
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("reading tombstones: %w", err)
		}
		epoch, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("tombstone %s: %w", e.Name(), err)
		}
		out[shard.ID(id)] = epoch
	}
	return out, nil
}
