package history

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestRecorderWritesJSONLines(t *testing.T) {
	var buf bytes.Buffer
	r := NewRecorder(&buf)
	r.Add(Op{Workload: Register, Kind: Write, Key: "k", Value: "1.0", Call: 1, Return: 2, Outcome: OK})
	r.Add(Op{Workload: Register, Kind: Read, Key: "k", Empty: true, Call: 3, Return: 4, Outcome: OK, Node: "n1"})
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines; want 2:\n%s", len(lines), buf.String())
	}
	var got Op
	if err := json.Unmarshal([]byte(lines[1]), &got); err != nil {
		t.Fatal(err)
	}
	if want := r.Ops()[1]; !reflect.DeepEqual(got, want) || got.Index != 1 {
		t.Errorf("line 2 = %+v; want %+v with index 1", got, want)
	}
}

func TestIntervals(t *testing.T) {
	events := []Event{
		{T: 10, Type: FaultStart, Fault: 1, Kind: "partition", Desc: "a"},
		{T: 20, Type: FaultStop, Fault: 1},
		{T: 25, Type: Note, Desc: "x"},
		{T: 27, Type: Member, Kind: "draining", Desc: "n3 draining", Nodes: []string{"n3"}},
		{T: 30, Type: FaultStart, Fault: 2, Kind: "kill", Desc: "b"},
	}
	if got, want := Marks(events), []Interval{{Kind: "draining", Desc: "n3 draining", Start: 27, End: 27}}; !reflect.DeepEqual(got, want) {
		t.Errorf("Marks = %+v; want %+v", got, want)
	}
	got := Intervals(events, 99)
	want := []Interval{
		{Fault: 1, Kind: "partition", Desc: "a", Start: 10, End: 20},
		{Fault: 2, Kind: "kill", Desc: "b", Start: 30, End: 99},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Intervals = %+v; want %+v", got, want)
	}
}
