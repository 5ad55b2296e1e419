package ring

import "fmt"

const (
	// DefaultReplicas is the replication factor R used when
	// Config.Replicas is zero: three replicas keep a Raft majority through
	// one failed node.
	DefaultReplicas = 3

	// DefaultVirtualNodes is the number of vnodes per member used when
	// Config.VirtualNodes is zero. Vnodes only shape the preference lists
	// that break ties, so balance does not depend on them. 128 makes every
	// member about equally likely to rank first for a shard, and makes
	// preference lists close to independent between shards, which spreads
	// a node's shards over many co-replicas and so keeps removals local
	// (see the package documentation).
	DefaultVirtualNodes = 128

	// MaxShards bounds the shard count Place accepts. Place keeps a rank per
	// (shard, member) pair, so memory grows with shards·members.
	MaxShards = 65536

	// MaxVirtualNodes bounds Config.VirtualNodes.
	MaxVirtualNodes = 4096
)

// Config holds the placement parameters every node of a cluster must agree
// on. The zero value is valid and means DefaultConfig.
type Config struct {
	// Replicas is the replication factor R: how many nodes hold each shard.
	// With fewer members than R, every member holds every shard. Zero means
	// DefaultReplicas.
	Replicas int

	// VirtualNodes is the number of vnodes each member gets on the Ring.
	// Zero means DefaultVirtualNodes.
	VirtualNodes int
}

// DefaultConfig returns the configuration the zero Config stands for.
func DefaultConfig() Config {
	return Config{Replicas: DefaultReplicas, VirtualNodes: DefaultVirtualNodes}
}

// Validate reports whether c is usable. Zero fields are valid (they take
// their defaults); negative ones and vnode counts above MaxVirtualNodes are
// not.
func (c Config) Validate() error {
	if c.Replicas < 0 {
		return fmt.Errorf("%w: Replicas = %d; want > 0, or 0 for the default %d",
			ErrInvalidConfig, c.Replicas, DefaultReplicas)
	}
	return validateVirtualNodes(c.VirtualNodes)
}

func validateVirtualNodes(v int) error {
	if v < 0 || v > MaxVirtualNodes {
		return fmt.Errorf("%w: VirtualNodes = %d; want 1..%d, or 0 for the default %d",
			ErrInvalidConfig, v, MaxVirtualNodes, DefaultVirtualNodes)
	}
	return nil
}

// withDefaults returns c with its zero fields replaced by the defaults.
func (c Config) withDefaults() Config {
	if c.Replicas == 0 {
		c.Replicas = DefaultReplicas
	}
	if c.VirtualNodes == 0 {
		c.VirtualNodes = DefaultVirtualNodes
	}
	return c
}
