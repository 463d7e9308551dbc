package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

var (
	bucketMeta      = []byte("meta")
	bucketDaemons   = []byte("daemons")
	bucketDataflows = []byte("dataflows")
	bucketStates    = []byte("states")
	keyVersion      = []byte("version")
)

// Bolt is a Store in a bbolt file. Only one process may hold the file.
type Bolt struct {
	db   *bolt.DB
	path string
}

// OpenBolt opens (creating if needed, mode 0600, parent 0700) the store at
// path and checks or writes its schema version.
func OpenBolt(path string) (*Bolt, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("open store %s: locked by another process (is another coordinator running?)", path)
		}
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	b := &Bolt{db: db, path: path}
	if err := b.init(); err != nil {
		db.Close()
		return nil, err
	}
	return b, nil
}

func (b *Bolt) init() error {
	return b.db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if v := meta.Get(keyVersion); v != nil {
			n, err := strconv.Atoi(string(v))
			if err != nil {
				return fmt.Errorf("open store %s: bad schema version %q", b.path, v)
			}
			if n > SchemaVersion {
				return fmt.Errorf("open store %s: schema version %d is newer than this adora understands (%d); upgrade adora, or start the coordinator with --store memory", b.path, n, SchemaVersion)
			}
			// n < SchemaVersion: migrations go here as the schema evolves.
		}
		if err := meta.Put(keyVersion, []byte(strconv.Itoa(SchemaVersion))); err != nil {
			return err
		}
		for _, name := range [][]byte{bucketDaemons, bucketDataflows, bucketStates} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
}

// Path is the file the store lives in.
func (b *Bolt) Path() string { return b.path }

func (b *Bolt) PutDaemon(r DaemonRecord) error {
	v, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("store daemon %s: %w", r.ID, err)
	}
	return b.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDaemons).Put([]byte(r.ID), v)
	})
}

func (b *Bolt) DeleteDaemon(id string) error {
	return b.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDaemons).Delete([]byte(id))
	})
}

func (b *Bolt) Daemons() ([]DaemonRecord, error) {
	var out []DaemonRecord
	err := b.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDaemons).ForEach(func(k, v []byte) error {
			var r DaemonRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("daemon %s: %w", k, err)
			}
			out = append(out, r)
			return nil
		})
	})
	sortDaemons(out)
	return out, err
}

func (b *Bolt) PutDataflow(r DataflowRecord) error {
	return b.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketDataflows)
		r.Generation = 1
		if old := bk.Get([]byte(r.ID)); old != nil {
			var prev DataflowRecord
			if err := json.Unmarshal(old, &prev); err == nil {
				r.Generation = prev.Generation + 1
			}
		}
		v, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("store dataflow %s: %w", r.ID, err)
		}
		return bk.Put([]byte(r.ID), v)
	})
}

func (b *Bolt) Dataflow(id string) (DataflowRecord, error) {
	var r DataflowRecord
	err := b.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketDataflows).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("dataflow %s: %w", id, ErrNotFound)
		}
		return json.Unmarshal(v, &r)
	})
	return r, err
}

func (b *Bolt) Dataflows() ([]DataflowRecord, error) {
	var out []DataflowRecord
	err := b.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDataflows).ForEach(func(k, v []byte) error {
			var r DataflowRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("dataflow %s: %w", k, err)
			}
			out = append(out, r)
			return nil
		})
	})
	sortDataflows(out)
	return out, err
}

func (b *Bolt) Prune(keep int) error {
	rs, err := b.Dataflows()
	if err != nil {
		return err
	}
	ids := pruneList(rs, keep)
	if len(ids) == 0 {
		return nil
	}
	return b.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketDataflows)
		for _, id := range ids {
			if err := bk.Delete([]byte(id)); err != nil {
				return err
			}
		}
		return nil
	})
}

func (b *Bolt) State(workspace string) (StateRecord, error) {
	var r StateRecord
	err := b.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketStates).Get([]byte(workspace))
		if v == nil {
			return fmt.Errorf("state %s: %w", workspace, ErrNotFound)
		}
		return json.Unmarshal(v, &r)
	})
	return r, err
}

func (b *Bolt) PutState(r StateRecord) error {
	v, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("store state %s: %w", r.Workspace, err)
	}
	return b.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketStates).Put([]byte(r.Workspace), v)
	})
}

func (b *Bolt) Close() error { return b.db.Close() }

// Open opens the store a --store spec names; defaultPath is used for a
// file store without a path.
func Open(spec, defaultPath string) (Store, error) {
	kind, path, err := ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	if kind == KindMemory {
		return NewMemory(), nil
	}
	if path == "" {
		path = defaultPath
	}
	return OpenBolt(path)
}
