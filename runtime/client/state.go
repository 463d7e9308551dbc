package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/adora-rs/adora/runtime/proto"
	"github.com/adora-rs/adora/state"
	"github.com/adora-rs/adora/state/statefile"
)

// StateBackend is a state.Backend kept by the coordinator under a
// workspace name, so a team and CI share one state and one lock
// (`-state coordinator`). Writes are compare-and-swap on the serial: a
// concurrent writer gets an error instead of a lost update.
type StateBackend struct {
	opts      Options
	workspace string
	lockID    string // the lock this backend took, sent with writes
}

var _ state.Backend = (*StateBackend)(nil)

// NewStateBackend returns the coordinator-held backend of workspace
// (e.g. "default").
func NewStateBackend(opts Options, workspace string) *StateBackend {
	return &StateBackend{opts: opts, workspace: workspace}
}

func (b *StateBackend) url(suffix string) string {
	return b.opts.endpoint().HTTPURL(proto.PathState + b.workspace + suffix)
}

func (b *StateBackend) do(ctx context.Context, method, suffix string, body []byte, hdr http.Header) (*http.Response, []byte, error) {
	if !proto.ValidID(b.workspace) {
		return nil, nil, fmt.Errorf("state workspace %q: use letters, digits, '.', '_' and '-'", b.workspace)
	}
	req, err := http.NewRequestWithContext(ctx, method, b.url(suffix), bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	setAuth(req, b.opts.Token)
	resp, err := b.opts.httpClient(0).Do(req)
	if err != nil {
		return nil, nil, &ConnectError{Addr: b.url(""), Err: err}
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return nil, nil, fmt.Errorf("coordinator state %s: %w", b.workspace, err)
	}
	return resp, buf.Bytes(), nil
}

// Read returns the stored state, or nil when the workspace has none.
func (b *StateBackend) Read(ctx context.Context) (*state.State, error) {
	resp, body, err := b.do(ctx, http.MethodGet, "", nil, nil)
	if err != nil {
		return nil, err
	}
	switch {
	case resp.StatusCode == http.StatusNotFound && resp.Header.Get(proto.HeaderStateSerial) == "0":
		return nil, nil
	case resp.StatusCode == http.StatusOK:
	default:
		return nil, b.httpErr("read", resp, body)
	}
	st, err := statefile.Decode(body)
	if err != nil {
		return nil, fmt.Errorf("coordinator state %s: %w", b.workspace, err)
	}
	return st, nil
}

// Write stores st with the serial after the stored one and sets st.Serial
// to it. It refuses another lineage and a concurrent write.
func (b *StateBackend) Write(ctx context.Context, st *state.State) error {
	resp, body, err := b.do(ctx, http.MethodHead, "", nil, nil)
	if err != nil {
		return err
	}
	var stored uint64
	switch {
	case resp.StatusCode == http.StatusOK:
		stored, _ = strconv.ParseUint(resp.Header.Get(proto.HeaderStateSerial), 10, 64)
	case resp.StatusCode == http.StatusNotFound && resp.Header.Get(proto.HeaderStateSerial) == "0":
	default:
		return b.httpErr("write", resp, body)
	}
	next := *st
	next.Serial = stored + 1
	data, err := statefile.Encode(&next)
	if err != nil {
		return err
	}
	hdr := http.Header{}
	hdr.Set(proto.HeaderStateSerial, strconv.FormatUint(next.Serial, 10))
	hdr.Set(proto.HeaderStateLineage, st.Lineage)
	hdr.Set("Content-Type", "application/json")
	if b.lockID != "" {
		hdr.Set(proto.HeaderLockID, b.lockID)
	}
	resp, body, err = b.do(ctx, http.MethodPut, "", data, hdr)
	if err != nil {
		return err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		st.Serial = next.Serial
		return nil
	case http.StatusLocked:
		return lockedErr(body)
	}
	return b.httpErr("write", resp, body)
}

// Lock takes the workspace's lock; a held lock comes back as
// *state.LockedError naming its holder.
func (b *StateBackend) Lock(ctx context.Context, info state.LockInfo) error {
	data, err := json.Marshal(info)
	if err != nil {
		return err
	}
	resp, body, err := b.do(ctx, http.MethodPost, "/lock", data, http.Header{"Content-Type": {"application/json"}})
	if err != nil {
		return err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		b.lockID = info.ID
		return nil
	case http.StatusLocked:
		return lockedErr(body)
	}
	return b.httpErr("lock", resp, body)
}

// Unlock releases the lock with the given ID.
func (b *StateBackend) Unlock(ctx context.Context, id string) error {
	data, _ := json.Marshal(map[string]string{"id": id})
	resp, body, err := b.do(ctx, http.MethodPost, "/unlock", data, http.Header{"Content-Type": {"application/json"}})
	if err != nil {
		return err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		if b.lockID == id {
			b.lockID = ""
		}
		return nil
	case http.StatusConflict:
		var r proto.StateUnlockResult
		if json.Unmarshal(body, &r) == nil {
			switch r.Code {
			case "not_locked":
				return state.ErrNotLocked
			case "mismatch":
				var h state.LockInfo
				json.Unmarshal(r.Holder, &h)
				return fmt.Errorf("unlock %s (held by %s as %s): %w", id, h.Who, h.ID, state.ErrLockIDMismatch)
			}
		}
	}
	return b.httpErr("unlock", resp, body)
}

func lockedErr(body []byte) error {
	var h state.LockInfo
	if err := json.Unmarshal(body, &h); err != nil {
		return fmt.Errorf("state is locked (holder unreadable: %v)", err)
	}
	return &state.LockedError{Holder: h}
}

func (b *StateBackend) httpErr(op string, resp *http.Response, body []byte) error {
	msg := string(bytes.TrimSpace(body))
	if len(msg) > 300 {
		msg = msg[:300]
	}
	if resp.StatusCode == http.StatusUnauthorized {
		return fmt.Errorf("coordinator state %s: %s: 401 unauthorized (pass --token or set ADORA_AUTH_TOKEN)", b.workspace, op)
	}
	return fmt.Errorf("coordinator state %s: %s: %s: %s", b.workspace, op, resp.Status, msg)
}
