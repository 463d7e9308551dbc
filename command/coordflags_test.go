package command

import (
	"io"
	"testing"
)

// Commands report flag parse errors through the Ui; the flag package must
// not print them a second time to stderr.
func TestCoordFlagSetDoesNotPrintParseErrors(t *testing.T) {
	fs := coordFlagSet("list")
	if fs.Output() != io.Discard {
		t.Fatalf("flag set output is %T, want io.Discard", fs.Output())
	}
	if err := fs.Parse([]string{"--nope"}); err == nil {
		t.Fatal("parse of an unknown flag succeeded")
	}
}
