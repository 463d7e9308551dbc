package coordinator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/adora-rs/adora/runtime/coordinator/store"
	"github.com/adora-rs/adora/runtime/proto"
)

// MaxStateSize bounds one stored state (64 MiB).
const MaxStateSize = 64 << 20

// The state endpoints keep adora plan/apply state for a workspace, so a
// team and CI share one state and one lock:
//
//	GET|HEAD /api/state/{ws}         200 + body, serial/lineage headers; 404 none
//	PUT      /api/state/{ws}         write serial stored+1 (409 if not, or
//	                                 another lineage; 423 if locked by another)
//	POST     /api/state/{ws}/lock    body LockInfo JSON with "id"; 423 + holder
//	POST     /api/state/{ws}/unlock  body {"id": ...}; 409 + StateUnlockResult

func (c *Coordinator) stateRoutes(mux *http.ServeMux) {
	mux.Handle("GET "+proto.PathState+"{ws}", c.authed(http.HandlerFunc(c.handleStateGet)))
	mux.Handle("PUT "+proto.PathState+"{ws}", c.authed(http.HandlerFunc(c.handleStatePut)))
	mux.Handle("POST "+proto.PathState+"{ws}/lock", c.authed(http.HandlerFunc(c.handleStateLock)))
	mux.Handle("POST "+proto.PathState+"{ws}/unlock", c.authed(http.HandlerFunc(c.handleStateUnlock)))
}

// stateRecord loads workspace r's record (an empty one when none exists).
func (c *Coordinator) stateRecord(w http.ResponseWriter, r *http.Request) (store.StateRecord, bool) {
	ws := r.PathValue("ws")
	if !ValidArtifactID(ws) {
		http.Error(w, "invalid workspace name (use letters, digits, '.', '_' and '-')", http.StatusBadRequest)
		return store.StateRecord{}, false
	}
	rec, err := c.store.State(ws)
	if errors.Is(err, store.ErrNotFound) {
		return store.StateRecord{Workspace: ws}, true
	}
	if err != nil {
		c.log.Error("read state", "workspace", ws, "err", err)
		http.Error(w, "cannot read state", http.StatusInternalServerError)
		return rec, false
	}
	return rec, true
}

func (c *Coordinator) handleStateGet(w http.ResponseWriter, r *http.Request) {
	c.stateMu.Lock()
	rec, ok := c.stateRecord(w, r)
	c.stateMu.Unlock()
	if !ok {
		return
	}
	if len(rec.Data) == 0 {
		// The serial header tells this 404 apart from an unknown route.
		w.Header().Set(proto.HeaderStateSerial, "0")
		http.Error(w, "no state stored for this workspace", http.StatusNotFound)
		return
	}
	w.Header().Set(proto.HeaderStateSerial, strconv.FormatUint(rec.Serial, 10))
	w.Header().Set(proto.HeaderStateLineage, rec.Lineage)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(rec.Data)))
	w.Write(rec.Data)
}

func (c *Coordinator) handleStatePut(w http.ResponseWriter, r *http.Request) {
	serial, err := strconv.ParseUint(r.Header.Get(proto.HeaderStateSerial), 10, 64)
	lineage := r.Header.Get(proto.HeaderStateLineage)
	if err != nil || serial == 0 || lineage == "" {
		http.Error(w, "missing "+proto.HeaderStateSerial+" or "+proto.HeaderStateLineage+" header", http.StatusBadRequest)
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxStateSize))
	if err != nil {
		http.Error(w, "state too large or unreadable", http.StatusRequestEntityTooLarge)
		return
	}
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	rec, ok := c.stateRecord(w, r)
	if !ok {
		return
	}
	if rec.Lineage != "" && rec.Lineage != lineage {
		http.Error(w, fmt.Sprintf("stored lineage %s differs from %s; refusing to overwrite another state", rec.Lineage, lineage), http.StatusConflict)
		return
	}
	if serial != rec.Serial+1 {
		http.Error(w, fmt.Sprintf("state changed concurrently: stored serial %d, this write %d; read it again", rec.Serial, serial), http.StatusConflict)
		return
	}
	if holder := lockID(rec.Lock); holder != "" && holder != r.Header.Get(proto.HeaderLockID) {
		writeLocked(w, rec.Lock)
		return
	}
	rec.Serial, rec.Lineage, rec.Data, rec.UpdatedAt = serial, lineage, data, c.clock.Now()
	if err := c.store.PutState(rec); err != nil {
		c.log.Error("write state", "workspace", rec.Workspace, "err", err)
		http.Error(w, "cannot write state", http.StatusInternalServerError)
		return
	}
	writeJSON(w, http.StatusOK, map[string]uint64{"serial": serial})
}

func lockID(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var l struct {
		ID string `json:"id"`
	}
	json.Unmarshal(raw, &l)
	return l.ID
}

func writeLocked(w http.ResponseWriter, holder json.RawMessage) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusLocked)
	w.Write(holder)
}

func (c *Coordinator) handleStateLock(w http.ResponseWriter, r *http.Request) {
	info, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil || !json.Valid(info) || lockID(info) == "" {
		http.Error(w, "body must be lock info JSON with an \"id\"", http.StatusBadRequest)
		return
	}
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	rec, ok := c.stateRecord(w, r)
	if !ok {
		return
	}
	if lockID(rec.Lock) != "" {
		writeLocked(w, rec.Lock)
		return
	}
	rec.Lock = info
	if err := c.store.PutState(rec); err != nil {
		http.Error(w, "cannot write state lock", http.StatusInternalServerError)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": lockID(info)})
}

func (c *Coordinator) handleStateUnlock(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ID string `json:"id"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil || req.ID == "" {
		http.Error(w, "body must be {\"id\": LOCK_ID}", http.StatusBadRequest)
		return
	}
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	rec, ok := c.stateRecord(w, r)
	if !ok {
		return
	}
	switch held := lockID(rec.Lock); {
	case held == "":
		writeJSON(w, http.StatusConflict, proto.StateUnlockResult{Code: "not_locked"})
		return
	case held != req.ID:
		writeJSON(w, http.StatusConflict, proto.StateUnlockResult{Code: "mismatch", Holder: rec.Lock})
		return
	}
	rec.Lock = nil
	if err := c.store.PutState(rec); err != nil {
		http.Error(w, "cannot write state lock", http.StatusInternalServerError)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": req.ID})
}
