package daemon

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/adora-rs/adora/internal/testutil"
)

// TestRouterLoggerHasNoDataflow: the router gets the daemon's logger and
// adds the dataflow id itself (as dataplane.NewRouter does), so its lines
// name the dataflow once.
func TestRouterLoggerHasNoDataflow(t *testing.T) {
	var buf testutil.SyncBuffer
	df := shDataflow(map[string]string{"n": "exit 0"})
	_, err := StartFlow(FlowConfig{
		ID: "f9", Dataflow: &df, WorkingDir: t.TempDir(), StateDir: t.TempDir(),
		Logger: slog.New(slog.NewTextHandler(&buf, nil)),
		NewRouter: func(cfg RouterConfig) (Router, error) {
			cfg.Logger.With("dataflow", cfg.DataflowID).Warn("publish output to remote daemons")
			return nil, errors.New("no router here")
		},
	})
	if err == nil {
		t.Fatal("a failing router factory did not fail the flow")
	}
	line := buf.String()
	if n := strings.Count(line, "dataflow="); n != 1 {
		t.Fatalf("the router's line names the dataflow %d times: %s", n, line)
	}
}

// TestBridgeLogsDataflowOnce: the bridge of DataplaneRouter logs with the
// dataflow id, once.
func TestBridgeLogsDataflowOnce(t *testing.T) {
	var buf testutil.SyncBuffer
	tr := newMemTransport()
	r, err := DataplaneRouter(RouterConfig{
		DataflowID: "df7", Dataflow: twoMachineFlow(), Local: []string{"camera", "actuator"},
		SocketDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(&buf, nil)), Transport: tr,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	tr.Publish(context.Background(), OutputKey("df7", "inference", "predictions"), []byte("x"), []byte("old format"))
	line := buf.String()
	if !strings.Contains(line, "unreadable message") || strings.Count(line, "dataflow=df7") != 1 {
		t.Fatalf("bridge logged %q, want one unreadable-message line naming dataflow df7 once", line)
	}
	if drops := r.Drops(); drops["actuator"] != 1 {
		t.Fatalf("drops %v, want actuator: 1", drops)
	}
}
