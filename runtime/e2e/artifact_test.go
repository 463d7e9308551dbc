package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/runtime/client"
	"github.com/adora-rs/adora/runtime/proto"
)

// TestDistributeHTTP: a node binary uploaded to the coordinator's artifact
// store is downloaded by the daemon (bearer token, sha256 checked) and run
// in place of the node's path.
func TestDistributeHTTP(t *testing.T) {
	e := newEnv(t)
	e.coordinator("--store", "memory")
	e.daemon("edge-01", "")
	c := e.client()
	body := []byte("#!/bin/sh\necho artifact-ran\n")
	sum := sha256.Sum256(body)
	build := uuid.NewString()
	opts := client.Options{Addr: "127.0.0.1", Port: e.port, Token: e.token()}
	if err := client.UploadArtifact(ctx(t), opts, build, "my-node", bytes.NewReader(body), hex.EncodeToString(sum[:])); err != nil {
		t.Fatal(err)
	}
	src := `
nodes:
  - id: my-node
    _unstable_deploy:
      machine: edge-01
      distribute: http
    path: ./my-node
`
	df, diags := config.ParseDataflow([]byte(src), "http.yml")
	if err := diags.Err(); err != nil {
		t.Fatal(err)
	}
	rep, err := c.Start(ctx(t), proto.Start{Name: "http", Descriptor: []byte(src), Dataflow: *df, WorkingDir: e.dir,
		Artifacts: map[string]proto.Artifact{"my-node": {BuildID: build, NodeID: "my-node", SHA256: hex.EncodeToString(sum[:]), Size: int64(len(body))}}})
	if err != nil {
		t.Fatal(err)
	}
	e.waitFor(20*time.Second, "dataflow to succeed", func() bool { return flowStatus(t, c, rep.DataflowID) == proto.FlowSucceeded })
	lines, err := c.Logs(ctx(t), rep.DataflowID, "my-node", 0)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, l := range lines {
		found = found || (l.Stream == proto.Stdout && strings.TrimSpace(l.Line) == "artifact-ran")
	}
	if !found {
		t.Fatalf("downloaded node did not run: %+v", lines)
	}
}
