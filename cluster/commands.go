package cluster

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/ringkv/ringkv/ring"
)

// command is the metadata log's entry. The metadata group sees few entries
// (membership changes and two per replica move), so JSON's readability
// beats compactness.
type command struct {
	Op    string `json:"op"`
	State *State `json:"state,omitempty"`
	// Node and Addr name the member a membership command is about.
	Node string `json:"node,omitempty"`
	Addr string `json:"addr,omitempty"`
	// Moves are the moves a start command begins; Move is the move a
	// finish command ends.
	Moves []Move `json:"moves,omitempty"`
	Move  *Move  `json:"move,omitempty"`
	// Auth holds an auth command's arguments (see auth.go).
	Auth *authArgs `json:"auth,omitempty"`
}

const (
	opNoop   = "noop"
	opInit   = "init"
	opJoin   = "join"
	opDrain  = "drain"
	opDead   = "dead"
	opAlive  = "alive"
	opStart  = "start"
	opFinish = "finish"
)

var knownOps = map[string]bool{opJoin: true, opDrain: true, opDead: true, opAlive: true, opStart: true, opFinish: true}

func encode(c command) []byte {
	b, err := json.Marshal(c)
	if err != nil {
		panic(fmt.Sprintf("cluster: encoding %s command: %v", c.Op, err)) // plain structs always encode
	}
	return b
}

// NoopCommand returns the command a new metadata leader commits to fix its
// term's commit index; it changes nothing.
func NoopCommand() []byte { return encode(command{Op: opNoop}) }

// InitCommand returns the command that creates the cluster with st (whose
// Epoch is set to 1 when applied; Target defaults to Shards).
func InitCommand(st State) ([]byte, error) {
	st.Epoch = 1
	st.normalize()
	if err := st.Validate(); err != nil {
		return nil, err
	}
	return encode(command{Op: opInit, State: &st}), nil
}

// JoinCommand adds node id at addr as a joining member. Joining again with
// the same address changes nothing.
func JoinCommand(id, addr string) []byte { return encode(command{Op: opJoin, Node: id, Addr: addr}) }

// DrainCommand starts removing node id: the target stops placing replicas
// on it, and once the moves have emptied it, it leaves the member list.
func DrainCommand(id string) []byte { return encode(command{Op: opDrain, Node: id}) }

// DeadCommand marks node id dead: its replicas are re-created elsewhere.
func DeadCommand(id string) []byte { return encode(command{Op: opDead, Node: id}) }

// AliveCommand marks a dead node reachable again: it turns joining and the
// ring may place replicas on it again.
func AliveCommand(id string) []byte { return encode(command{Op: opAlive, Node: id}) }

// StartCommand begins moves (each on a shard with no move in progress;
// Started set by the proposer).
func StartCommand(moves []Move) []byte { return encode(command{Op: opStart, Moves: moves}) }

// FinishCommand ends the move in progress on m.Shard, which must have m's
// From and To. With Outcome MoveDone the shard's replica set takes the
// move; with MoveAborted it stays as it was.
func FinishCommand(m Move) []byte { return encode(command{Op: opFinish, Move: &m}) }

// normalize fills the fields an older or minimal state leaves empty.
func (s *State) normalize() {
	if len(s.Target) == 0 {
		s.Target = cloneSets(s.Shards)
	}
	if len(s.Changes) == 0 {
		s.Changes = make([]uint64, len(s.Shards))
	}
}

// clone returns a deep copy of s.
func (s *State) clone() *State {
	c := *s
	c.Members = slices.Clone(s.Members)
	c.Shards = cloneSets(s.Shards)
	c.Target = cloneSets(s.Target)
	c.Changes = slices.Clone(s.Changes)
	c.Moves = slices.Clone(s.Moves)
	c.Finished = slices.Clone(s.Finished)
	c.Removed = slices.Clone(s.Removed)
	c.Auth = s.Auth.clone()
	return &c
}

func cloneSets(in [][]string) [][]string {
	out := make([][]string, len(in))
	for i, set := range in {
		out[i] = slices.Clone(set)
	}
	return out
}

func (s *State) memberIndex(id string) int {
	return slices.IndexFunc(s.Members, func(m Member) bool { return m.ID == id })
}

// apply changes s by c. It reports whether anything changed.
func (s *State) apply(c command) (bool, error) {
	switch c.Op {
	case opJoin:
		return s.join(c.Node, c.Addr)
	case opDrain:
		return s.drain(c.Node)
	case opDead:
		return s.setDead(c.Node)
	case opAlive:
		return s.setAlive(c.Node)
	case opStart:
		return s.start(c.Moves)
	case opFinish:
		if c.Move == nil {
			return false, fmt.Errorf("%w: finish without a move", ErrBadCommand)
		}
		return s.finish(*c.Move)
	default:
		if authOps[c.Op] {
			return s.applyAuth(c)
		}
		return false, fmt.Errorf("%w: unknown op %q", ErrBadCommand, c.Op)
	}
}

func (s *State) join(id, addr string) (bool, error) {
	if id == "" || addr == "" {
		return false, fmt.Errorf("%w: join needs a node ID and an address", ErrBadCommand)
	}
	if slices.Contains(s.Removed, id) {
		return false, fmt.Errorf("%w: %q left the cluster; a node rejoins under a new ID, with an empty data directory", ErrRemoved, id)
	}
	if i := s.memberIndex(id); i >= 0 {
		if s.Members[i].Addr != addr {
			return false, fmt.Errorf("%w: %q is a member at %s, not %s", ErrExists, id, s.Members[i].Addr, addr)
		}
		return false, nil
	}
	for _, m := range s.Members {
		if m.Addr == addr {
			return false, fmt.Errorf("%w: address %s belongs to member %q", ErrExists, addr, m.ID)
		}
	}
	s.Members = append(s.Members, Member{ID: id, Addr: addr, State: MemberJoining})
	return true, s.retarget()
}

func (s *State) drain(id string) (bool, error) {
	i := s.memberIndex(id)
	if i < 0 {
		if slices.Contains(s.Removed, id) {
			return false, nil // already gone: removing again is done
		}
		return false, fmt.Errorf("%w: node %q", ErrNotMember, id)
	}
	if s.Members[i].State == MemberDraining {
		return false, nil
	}
	if err := s.checkLeaves(id, "removing"); err != nil {
		return false, err
	}
	s.Members[i].State = MemberDraining
	return true, s.retarget()
}

func (s *State) setDead(id string) (bool, error) {
	i := s.memberIndex(id)
	if i < 0 {
		return false, fmt.Errorf("%w: node %q", ErrNotMember, id)
	}
	m := &s.Members[i]
	switch {
	case m.Unreachable():
		return false, nil
	case m.State == MemberDraining:
		// Its replicas are already leaving; only the planner's view of it
		// changes.
		m.Down = true
		return true, nil
	}
	if err := s.checkLeaves(id, "declaring dead"); err != nil {
		return false, err
	}
	m.State, m.Down = MemberDead, true
	return true, s.retarget()
}

func (s *State) setAlive(id string) (bool, error) {
	i := s.memberIndex(id)
	if i < 0 {
		return false, fmt.Errorf("%w: node %q", ErrNotMember, id)
	}
	m := &s.Members[i]
	if !m.Unreachable() {
		return false, nil
	}
	m.Down = false
	if m.State != MemberDead {
		return true, nil // a draining member goes on draining
	}
	m.State = MemberJoining
	return true, s.retarget()
}

// checkLeaves refuses to take id out of the placeable members when fewer
// than the replication factor would remain (a cluster that never had that
// many is allowed to keep what it has, but not to shrink).
func (s *State) checkLeaves(id, doing string) error {
	left := 0
	for _, m := range s.Members {
		if m.ID != id && m.State.Placeable() {
			left++
		}
	}
	if left < s.Replicas {
		return fmt.Errorf("%w: %s %s would leave %d nodes for replication factor %d", ErrTooFewNodes, doing, id, left, s.Replicas)
	}
	return nil
}

// retarget recomputes the target placement from the previous one over the
// placeable members, and settles member states.
func (s *State) retarget() error {
	members := s.Placeable()
	if len(members) == 0 {
		return fmt.Errorf("%w: no placeable member left", ErrTooFewNodes)
	}
	p, err := ring.Place(ring.Placement{Shards: s.Target}, members, int(s.ShardCount),
		ring.Config{Replicas: s.Replicas, VirtualNodes: s.VirtualNodes})
	if err != nil {
		return fmt.Errorf("%w: placing shards: %w", ErrBadCommand, err)
	}
	s.Target = p.Shards
	s.FinishedSinceChange, s.BytesSinceChange = 0, 0
	s.settle()
	return nil
}

func (s *State) start(moves []Move) (bool, error) {
	if len(moves) == 0 {
		return false, nil
	}
	for _, m := range moves {
		if err := s.checkStart(m); err != nil {
			return false, err
		}
		m.Finished, m.Bytes, m.Outcome, m.Reason = 0, 0, "", ""
		i, _ := slices.BinarySearchFunc(s.Moves, m.Shard, func(a Move, id uint32) int { return int(a.Shard) - int(id) })
		s.Moves = slices.Insert(s.Moves, i, m)
	}
	return true, nil
}

func (s *State) checkStart(m Move) error {
	if int(m.Shard) >= len(s.Shards) {
		return fmt.Errorf("%w: shard %d of %d", ErrBadCommand, m.Shard, len(s.Shards))
	}
	if m.From == "" && m.To == "" {
		return fmt.Errorf("%w: move on shard %d has neither source nor destination", ErrBadCommand, m.Shard)
	}
	if _, busy := s.ActiveMove(m.Shard); busy {
		return fmt.Errorf("%w: shard %d already has a move in progress", ErrMoveConflict, m.Shard)
	}
	reps := s.Shards[m.Shard]
	if m.From != "" && !slices.Contains(reps, m.From) {
		return fmt.Errorf("%w: shard %d has no replica on %s", ErrMoveConflict, m.Shard, m.From)
	}
	if m.To != "" {
		if slices.Contains(reps, m.To) {
			return fmt.Errorf("%w: shard %d already has a replica on %s", ErrMoveConflict, m.Shard, m.To)
		}
		i := s.memberIndex(m.To)
		if i < 0 || !s.Members[i].State.Placeable() {
			return fmt.Errorf("%w: %s cannot take replicas", ErrMoveConflict, m.To)
		}
	}
	if m.To == "" && len(reps) <= 1 {
		return fmt.Errorf("%w: shard %d would lose its last replica", ErrMoveConflict, m.Shard)
	}
	return nil
}

func (s *State) finish(m Move) (bool, error) {
	cur, ok := s.ActiveMove(m.Shard)
	if !ok || cur.From != m.From || cur.To != m.To {
		return false, fmt.Errorf("%w: no move %s in progress", ErrMoveConflict, m)
	}
	switch m.Outcome {
	case MoveDone:
		reps := s.Shards[m.Shard]
		switch {
		case m.From == "":
			reps = append(reps, m.To)
		case m.To == "":
			reps = slices.DeleteFunc(reps, func(id string) bool { return id == m.From })
		default:
			reps[slices.Index(reps, m.From)] = m.To
		}
		s.Shards[m.Shard] = reps
		s.Changes[m.Shard]++
	case MoveAborted:
	default:
		return false, fmt.Errorf("%w: move outcome %q", ErrBadCommand, m.Outcome)
	}
	i := slices.IndexFunc(s.Moves, func(a Move) bool { return a.Shard == m.Shard })
	s.Moves = slices.Delete(s.Moves, i, i+1)
	done := cur
	done.Finished, done.Bytes, done.Outcome, done.Reason = m.Finished, m.Bytes, m.Outcome, m.Reason
	s.Finished = append(s.Finished, done)
	if len(s.Finished) > MaxFinished {
		s.Finished = slices.Delete(s.Finished, 0, len(s.Finished)-MaxFinished)
	}
	s.FinishedSinceChange++
	s.BytesSinceChange += m.Bytes
	s.settle()
	return true, nil
}

// settle moves members between states once the moves they wait for are
// over: a joining member that holds all its target replicas turns active,
// and a draining member that holds nothing leaves the cluster.
func (s *State) settle() {
	busy := map[string]bool{}
	for _, m := range s.Moves {
		busy[m.From], busy[m.To] = true, true
	}
	holds := map[string]bool{}
	missing := map[string]bool{}
	for i, reps := range s.Shards {
		for _, id := range reps {
			holds[id] = true
		}
		for _, id := range s.targetOf(i) {
			if !slices.Contains(reps, id) {
				missing[id] = true
			}
		}
	}
	kept := s.Members[:0]
	for _, m := range s.Members {
		switch {
		case m.State == MemberJoining && !missing[m.ID] && !busy[m.ID]:
			m.State = MemberActive
		case m.State == MemberDraining && !holds[m.ID] && !busy[m.ID]:
			s.Removed = append(s.Removed, m.ID)
			continue
		}
		kept = append(kept, m)
	}
	s.Members = kept
}

// String formats m like ring.Move: "shard 3: a -> b".
func (m Move) String() string {
	return ring.Move{Shard: m.Shard, From: m.From, To: m.To}.String()
}
