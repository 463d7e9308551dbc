package daemon

import (
	"testing"

	"github.com/google/uuid"
)

func FuzzParseIdentity(f *testing.F) {
	f.Add([]byte(`{"version":1,"daemon_uuid":"0b8f2c1e-6f4e-4a57-9d0b-3c2f6b1a7e55"}`))
	f.Add([]byte("0b8f2c1e-6f4e-4a57-9d0b-3c2f6b1a7e55\n"))
	f.Add([]byte(`{"version":2,"daemon_uuid":"x"}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := parseIdentity("identity", b)
		if err != nil {
			return
		}
		if _, perr := uuid.Parse(id); perr != nil {
			t.Fatalf("accepted identity %q that is not a uuid", id)
		}
	})
}
