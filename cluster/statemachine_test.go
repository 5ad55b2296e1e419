package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"
)

// waitLimit bounds every wait on a channel that must be closed already or
// very soon; it is a safety net against a hung test, never a sleep.
const waitLimit = 5 * time.Second

// isClosed reports whether ch is closed now. Apply, Restore and publish
// are synchronous, so a change has closed the channel by the time they
// return, and "not closed" can be checked without waiting.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// mustInit applies InitCommand(st) and fails the test on any error.
func mustInit(t *testing.T, sm *StateMachine, st State) {
	t.Helper()
	cmd, err := InitCommand(st)
	if err != nil {
		t.Fatalf("InitCommand: %v", err)
	}
	if res := sm.Apply(1, cmd); res != nil {
		t.Fatalf("Apply(init) = %v; want nil", res)
	}
}

// applyErr applies cmd and returns its result as an error.
func applyErr(t *testing.T, sm *StateMachine, index uint64, cmd []byte) error {
	t.Helper()
	res := sm.Apply(index, cmd)
	if res == nil {
		return nil
	}
	err, ok := res.(error)
	if !ok {
		t.Fatalf("Apply(%q) = %#v (%T); want nil or an error", cmd, res, res)
	}
	return err
}

// rawInit encodes an init command without InitCommand's validation, as a
// buggy or malicious proposer could.
func rawInit(t *testing.T, st *State) []byte {
	t.Helper()
	b, err := json.Marshal(command{Op: opInit, State: st})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNewStateMachineIsUninitialized(t *testing.T) {
	sm := NewStateMachine()
	cur := sm.Current()
	if cur == nil {
		t.Fatal("Current() = nil; want a zero State")
	}
	if cur.Initialized() || cur.Epoch != 0 {
		t.Errorf("Current() = %+v; want an uninitialized state with epoch 0", cur)
	}
	if isClosed(sm.Changed()) {
		t.Error("Changed() of a new state machine is closed; want open")
	}
}

func TestInitCommand(t *testing.T) {
	st := testState()
	st.Epoch = 42 // InitCommand sets it to 1
	cmd, err := InitCommand(st)
	if err != nil {
		t.Fatalf("InitCommand(valid) = %v", err)
	}
	var c command
	if err := json.Unmarshal(cmd, &c); err != nil {
		t.Fatalf("InitCommand output %q does not decode: %v", cmd, err)
	}
	if c.Op != opInit || c.State == nil || c.State.Epoch != 1 {
		t.Errorf("InitCommand decoded = %+v; want op %q with a state at epoch 1", c, opInit)
	}
	if st.Epoch != 42 {
		t.Errorf("InitCommand modified its argument: Epoch = %d", st.Epoch)
	}

	bad := testState()
	bad.Shards[0] = []string{"n9"}
	if cmd, err := InitCommand(bad); err == nil {
		t.Errorf("InitCommand(shard on unknown node) = %q, nil; want an error", cmd)
	}
}

func TestApplyInit(t *testing.T) {
	sm := NewStateMachine()
	changed := sm.Changed()
	want := testState()
	want.Epoch = 1
	want.normalize() // the target starts as the placement
	in := testState()
	in.Epoch = 0
	mustInit(t, sm, in)

	got := sm.Current()
	if !got.Initialized() || got.Epoch != 1 {
		t.Errorf("after init: Epoch = %d, Initialized() = %v; want 1, true", got.Epoch, got.Initialized())
	}
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("after init: Current() = %+v; want %+v", *got, want)
	}
	select {
	case <-changed:
	case <-time.After(waitLimit):
		t.Fatal("Changed() channel taken before init was not closed by it")
	}
	if isClosed(sm.Changed()) {
		t.Error("Changed() after init is already closed; want a fresh, open channel")
	}
}

func TestApplyInitOverridesEpoch(t *testing.T) {
	sm := NewStateMachine()
	st := testState()
	st.Epoch = 99 // a raw command may carry any epoch
	if err := applyErr(t, sm, 1, rawInit(t, &st)); err != nil {
		t.Fatalf("Apply(init with epoch 99) = %v; want nil", err)
	}
	if got := sm.Current().Epoch; got != 1 {
		t.Errorf("Epoch after init = %d; want 1", got)
	}
}

func TestApplyInitTwice(t *testing.T) {
	sm := NewStateMachine()
	mustInit(t, sm, testState())
	before := sm.Current()
	changed := sm.Changed()

	other := testState()
	other.Replicas = 1
	other.Members = other.Members[:1]
	other.Shards = [][]string{{"n1"}, {"n1"}, {"n1"}, {"n1"}}
	cmd, err := InitCommand(other)
	if err != nil {
		t.Fatal(err)
	}
	if err := applyErr(t, sm, 2, cmd); !errors.Is(err, ErrAlreadyInitialized) {
		t.Errorf("second Apply(init) = %v; want ErrAlreadyInitialized", err)
	}
	if got := sm.Current(); got != before {
		t.Errorf("second init changed the state: %+v; want %+v", got, before)
	}
	if isClosed(changed) {
		t.Error("rejected init closed the Changed() channel")
	}
	// Even an invalid second init reports ErrAlreadyInitialized.
	if err := applyErr(t, sm, 3, []byte(`{"op":"init"}`)); !errors.Is(err, ErrAlreadyInitialized) {
		t.Errorf("second Apply(init without state) = %v; want ErrAlreadyInitialized", err)
	}
}

func TestApplyRejectsBadCommands(t *testing.T) {
	dupMember := testState()
	dupMember.Members = append(dupMember.Members, Member{ID: "n1", Addr: "127.0.0.1:9999"})
	unknownNode := testState()
	unknownNode.Shards[3] = []string{"n1", "n7"}
	countMismatch := testState()
	countMismatch.ShardCount = 8
	noReplicas := testState()
	noReplicas.Replicas = 0

	tests := []struct {
		name string
		cmd  []byte
		want string // substring of the error
	}{
		{"duplicate member", rawInit(t, &dupMember), `duplicate member "n1"`},
		{"shard on unknown node", rawInit(t, &unknownNode), `unknown node "n7"`},
		{"shard count mismatch", rawInit(t, &countMismatch), "shard count 8 but 4"},
		{"zero replication factor", rawInit(t, &noReplicas), "replication factor 0"},
		{"init without state", []byte(`{"op":"init"}`), "init without state"},
		{"init with null state", []byte(`{"op":"init","state":null}`), "init without state"},
		{"unknown op", []byte(`{"op":"resize"}`), `unknown op "resize"`},
		{"empty op", []byte(`{}`), `unknown op ""`},
		{"json null", []byte(`null`), `unknown op ""`},
		{"garbage", []byte("\x00\xffnot json"), ""},
		{"empty", nil, ""},
		{"truncated", []byte(`{"op":"in`), ""},
		{"wrong type", []byte(`{"op":7}`), ""},
		{"array", []byte(`["init"]`), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sm := NewStateMachine()
			before := sm.Current()
			changed := sm.Changed()
			err := applyErr(t, sm, 1, tt.cmd)
			if !errors.Is(err, ErrBadCommand) {
				t.Fatalf("Apply(%q) = %v; want ErrBadCommand", tt.cmd, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Apply(%q) = %q; want it to contain %q", tt.cmd, err, tt.want)
			}
			if got := sm.Current(); got != before || got.Initialized() {
				t.Errorf("rejected command changed the state to %+v", got)
			}
			if isClosed(changed) {
				t.Error("rejected command closed the Changed() channel")
			}
		})
	}
}

func TestApplyBadCommandAfterInitChangesNothing(t *testing.T) {
	sm := NewStateMachine()
	mustInit(t, sm, testState())
	before := sm.Current()
	changed := sm.Changed()
	for i, cmd := range [][]byte{[]byte("garbage"), []byte(`{"op":"resize"}`)} {
		if err := applyErr(t, sm, uint64(2+i), cmd); !errors.Is(err, ErrBadCommand) {
			t.Errorf("Apply(%q) = %v; want ErrBadCommand", cmd, err)
		}
	}
	if got := sm.Current(); got != before {
		t.Errorf("state changed to %+v; want %+v", got, before)
	}
	if isClosed(changed) {
		t.Error("bad commands closed the Changed() channel")
	}
}

func TestApplyNoop(t *testing.T) {
	for _, initialized := range []bool{false, true} {
		sm := NewStateMachine()
		if initialized {
			mustInit(t, sm, testState())
		}
		before := sm.Current()
		changed := sm.Changed()
		if err := applyErr(t, sm, 5, NoopCommand()); err != nil {
			t.Errorf("initialized=%v: Apply(noop) = %v; want nil", initialized, err)
		}
		if got := sm.Current(); got != before {
			t.Errorf("initialized=%v: noop changed the state to %+v", initialized, got)
		}
		if isClosed(changed) {
			t.Errorf("initialized=%v: noop closed the Changed() channel", initialized)
		}
	}
}

func TestChangedWakesWaiter(t *testing.T) {
	sm := NewStateMachine()
	changed := sm.Changed()
	woke := make(chan *State, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-changed:
			woke <- sm.Current()
		case <-time.After(waitLimit):
			woke <- nil
		}
	}()
	mustInit(t, sm, testState())
	wg.Wait()
	if st := <-woke; st == nil {
		t.Fatal("waiter on Changed() was not woken by init")
	} else if st.Epoch != 1 {
		t.Errorf("waiter woken by init saw epoch %d; want 1", st.Epoch)
	}
}

func snapshotBytes(t *testing.T, sm *StateMachine) []byte {
	t.Helper()
	snap, err := sm.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot() = %v", err)
	}
	defer snap.Release()
	var buf bytes.Buffer
	n, err := snap.WriteTo(&buf)
	if err != nil {
		t.Fatalf("WriteTo = %v", err)
	}
	if n != int64(buf.Len()) {
		t.Errorf("WriteTo returned %d; wrote %d bytes", n, buf.Len())
	}
	return buf.Bytes()
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	src := NewStateMachine()
	mustInit(t, src, testState())
	data := snapshotBytes(t, src)

	dst := NewStateMachine()
	changed := dst.Changed()
	if err := dst.Restore(bytes.NewReader(data)); err != nil {
		t.Fatalf("Restore(snapshot) = %v", err)
	}
	if got, want := dst.Current(), src.Current(); !reflect.DeepEqual(got, want) {
		t.Errorf("after Restore: Current() = %+v; want %+v", got, want)
	}
	if !isClosed(changed) {
		t.Error("Restore did not close the Changed() channel")
	}

	// An initialized state machine restores an uninitialized snapshot too:
	// Raft may install any earlier snapshot over the state.
	empty := snapshotBytes(t, NewStateMachine())
	if err := dst.Restore(bytes.NewReader(empty)); err != nil {
		t.Fatalf("Restore(uninitialized snapshot) = %v", err)
	}
	if got := dst.Current(); got.Initialized() || !reflect.DeepEqual(*got, State{}) {
		t.Errorf("after Restore(uninitialized): Current() = %+v; want the zero State", got)
	}
}

func TestSnapshotIsPointInTime(t *testing.T) {
	sm := NewStateMachine()
	snap, err := sm.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	mustInit(t, sm, testState())
	var buf bytes.Buffer
	if _, err := snap.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	var st State
	if err := json.Unmarshal(buf.Bytes(), &st); err != nil {
		t.Fatalf("snapshot %q does not decode: %v", buf.Bytes(), err)
	}
	if st.Initialized() {
		t.Errorf("snapshot taken before init wrote %+v; want the uninitialized state", st)
	}
}

func TestSnapshotWriteError(t *testing.T) {
	sm := NewStateMachine()
	mustInit(t, sm, testState())
	snap, err := sm.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	wantErr := errors.New("disk full")
	if _, err := snap.WriteTo(failWriter{wantErr}); !errors.Is(err, wantErr) {
		t.Errorf("WriteTo(failing writer) = %v; want %v", err, wantErr)
	}
}

type failWriter struct{ err error }

func (w failWriter) Write([]byte) (int, error) { return 0, w.err }

func TestRestoreRejectsGarbage(t *testing.T) {
	valid := func() []byte {
		sm := NewStateMachine()
		mustInit(t, sm, testState())
		return snapshotBytes(t, sm)
	}()
	invalid := testState()
	invalid.Shards[0] = []string{"n9"}
	invalidJSON, err := json.Marshal(invalid)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		r    io.Reader
	}{
		{"empty", bytes.NewReader(nil)},
		{"garbage", strings.NewReader("\x00\x01garbage")},
		{"truncated snapshot", bytes.NewReader(valid[:len(valid)/2])},
		{"array", strings.NewReader(`[1,2,3]`)},
		{"string", strings.NewReader(`"state"`)},
		{"wrong field type", strings.NewReader(`{"epoch":"one"}`)},
		{"initialized but invalid", bytes.NewReader(invalidJSON)},
		{"initialized without shards", strings.NewReader(`{"epoch":3}`)},
		{"read error", iotest.ErrReader(errors.New("read failed"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sm := NewStateMachine()
			mustInit(t, sm, testState())
			before := sm.Current()
			changed := sm.Changed()
			if err := sm.Restore(tt.r); err == nil {
				t.Fatal("Restore = nil; want an error")
			}
			if got := sm.Current(); got != before {
				t.Errorf("failed Restore changed the state to %+v; want %+v", got, before)
			}
			if isClosed(changed) {
				t.Error("failed Restore closed the Changed() channel")
			}
		})
	}
}

// Restore must not turn a document that is not a snapshot into an
// uninitialized cluster. Snapshot.WriteTo never writes "null" (Current is
// never nil), so a "null" stream can only be corruption.
func TestRestoreRejectsNull(t *testing.T) {
	sm := NewStateMachine()
	mustInit(t, sm, testState())
	before := sm.Current()
	if err := sm.Restore(strings.NewReader("null")); err == nil {
		t.Error(`Restore("null") = nil; want an error`)
	}
	if got := sm.Current(); got != before {
		t.Errorf(`Restore("null") changed the state to %+v; want %+v`, got, before)
	}
}

func TestConcurrentReaders(t *testing.T) {
	sm := NewStateMachine()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				ch := sm.Changed()
				if st := sm.Current(); st == nil {
					t.Error("Current() = nil")
					return
				}
				select {
				case <-stop:
					return
				case <-ch:
				}
			}
		}()
	}
	mustInit(t, sm, testState())
	data := snapshotBytes(t, sm)
	for range 20 {
		if err := sm.Restore(bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		sm.Apply(0, NoopCommand())
	}
	close(stop)
	wg.Wait()
	if got := sm.Current().Epoch; got != 1 {
		t.Errorf("Epoch = %d; want 1", got)
	}
}
