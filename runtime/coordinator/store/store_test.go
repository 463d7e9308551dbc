package store

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/runtime/proto"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func sampleFlow(id string, created time.Time, st proto.FlowStatus) DataflowRecord {
	return DataflowRecord{
		ID: id, Name: "app-" + id, Descriptor: []byte("nodes:\n  - id: a\n"),
		Dataflow:   config.Dataflow{Nodes: []config.Node{{ID: "a", Path: "/bin/a", Restart: config.RestartPolicy{Mode: config.RestartAlways}}}},
		WorkingDir: "/work",
		Placements: []proto.Placement{{NodeID: "a", DaemonID: "d1", MachineID: "robot", Reason: "machine robot"}},
		Status:     st, CreatedAt: created, UpdatedAt: created,
	}
}

// testStore is the conformance suite every Store passes.
func testStore(t *testing.T, s Store) {
	t.Helper()
	d := DaemonRecord{ID: "d1", MachineID: "robot", Labels: map[string]string{"gpu": "true"}, Version: "1", FirstSeen: t0, LastSeen: t0}
	if err := s.PutDaemon(d); err != nil {
		t.Fatal(err)
	}
	if err := s.PutDaemon(DaemonRecord{ID: "d0", Version: "1"}); err != nil {
		t.Fatal(err)
	}
	ds, err := s.Daemons()
	if err != nil || len(ds) != 2 || ds[0].ID != "d0" || !reflect.DeepEqual(ds[1], d) {
		t.Fatalf("Daemons = %+v, %v", ds, err)
	}
	if err := s.DeleteDaemon("d0"); err != nil {
		t.Fatal(err)
	}
	if ds, _ := s.Daemons(); len(ds) != 1 {
		t.Fatalf("after delete: %d daemons", len(ds))
	}

	f := sampleFlow("f1", t0, proto.FlowRunning)
	if err := s.PutDataflow(f); err != nil {
		t.Fatal(err)
	}
	f.Status = proto.FlowStopped
	if err := s.PutDataflow(f); err != nil {
		t.Fatal(err)
	}
	got, err := s.Dataflow("f1")
	if err != nil {
		t.Fatal(err)
	}
	f.Generation = 2
	if !reflect.DeepEqual(got, f) {
		t.Fatalf("Dataflow:\n got %+v\nwant %+v", got, f)
	}
	if _, err := s.Dataflow("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing dataflow err = %v", err)
	}

	for i, id := range []string{"f2", "f3", "f4"} {
		st := proto.FlowSucceeded
		if id == "f2" {
			st = proto.FlowRunning
		}
		if err := s.PutDataflow(sampleFlow(id, t0.Add(time.Duration(i+1)*time.Minute), st)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Prune(1); err != nil {
		t.Fatal(err)
	}
	all, err := s.Dataflows()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range all {
		ids = append(ids, r.ID)
	}
	// f1 (stopped) and f3 (succeeded) are the oldest finished; f2 runs.
	if want := []string{"f2", "f4"}; !reflect.DeepEqual(ids, want) {
		t.Fatalf("after Prune(1): %v, want %v", ids, want)
	}

	if _, err := s.State("prod"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing state err = %v", err)
	}
	sr := StateRecord{Workspace: "prod", Serial: 3, Lineage: "l1", Data: []byte(`{"serial":3}`), Lock: []byte(`{"id":"x"}`), UpdatedAt: t0}
	if err := s.PutState(sr); err != nil {
		t.Fatal(err)
	}
	got2, err := s.State("prod")
	if err != nil || !reflect.DeepEqual(got2, sr) {
		t.Fatalf("State = %+v, %v; want %+v", got2, err, sr)
	}
}

func TestMemoryStore(t *testing.T) { testStore(t, NewMemory()) }

func TestBoltStore(t *testing.T) {
	s, err := OpenBolt(filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	testStore(t, s)
}

func TestBoltReopenKeepsRecords(t *testing.T) {
	p := filepath.Join(t.TempDir(), "dir", "c.db")
	s, err := OpenBolt(p)
	if err != nil {
		t.Fatal(err)
	}
	f := sampleFlow("f1", t0, proto.FlowRunning)
	if err := s.PutDataflow(f); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = OpenBolt(p)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Dataflow("f1")
	if err != nil || got.Status != proto.FlowRunning || got.Dataflow.Nodes[0].Restart.Mode != config.RestartAlways {
		t.Fatalf("after reopen: %+v, %v", got, err)
	}
}

func TestBoltRefusesNewerSchema(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.db")
	db, err := bolt.Open(p, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error {
		b, _ := tx.CreateBucketIfNotExists(bucketMeta)
		return b.Put(keyVersion, []byte("99"))
	})
	db.Close()
	_, err = OpenBolt(p)
	if err == nil || !strings.Contains(err.Error(), "schema version 99") {
		t.Fatalf("OpenBolt = %v, want schema version error", err)
	}
}

func TestBoltLockedByAnother(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.db")
	s, err := OpenBolt(p)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := OpenBolt(p); err == nil || !strings.Contains(err.Error(), "another coordinator") {
		t.Fatalf("second OpenBolt = %v", err)
	}
}

func TestParseSpec(t *testing.T) {
	tests := []struct {
		in      string
		kind    Kind
		path    string
		wantErr bool
	}{
		{"file", KindFile, "", false},
		{"", KindFile, "", false},
		{"file:/x/c.db", KindFile, "/x/c.db", false},
		{"redb", KindFile, "", false},
		{"redb:/y.db", KindFile, "/y.db", false},
		{"memory", KindMemory, "", false},
		{"memory:/x", "", "", true},
		{"sqlite", "", "", true},
	}
	for _, tt := range tests {
		k, p, err := ParseSpec(tt.in)
		if (err != nil) != tt.wantErr || k != tt.kind || p != tt.path {
			t.Errorf("ParseSpec(%q) = %q, %q, %v", tt.in, k, p, err)
		}
	}
}

func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"file", "file:/a/b.db", "memory", "redb", "redb:x", ":", "memory:", "bolt:/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		kind, path, err := ParseSpec(spec)
		if err != nil {
			if kind != "" || path != "" {
				t.Fatalf("ParseSpec(%q) = %q, %q with error %v", spec, kind, path, err)
			}
			return
		}
		if kind != KindFile && kind != KindMemory {
			t.Fatalf("ParseSpec(%q) kind %q", spec, kind)
		}
		if kind == KindMemory && path != "" {
			t.Fatalf("ParseSpec(%q): memory with path %q", spec, path)
		}
	})
}
