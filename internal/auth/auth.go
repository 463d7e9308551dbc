// Package auth owns the coordinator's bearer token: generated once from
// crypto/rand, kept in a 0600 file and reused across restarts, and found by
// clients through a flag, ADORA_AUTH_TOKEN or that file. The token is a
// secret: nothing here logs it or puts it in an error.
package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/adora-rs/adora/internal/atomicfile"
	"github.com/adora-rs/adora/internal/paths"
)

// EnvToken names the environment variable that carries the token.
const EnvToken = "ADORA_AUTH_TOKEN"

// Generate returns a fresh token: 32 random bytes as 64 hex characters.
func Generate() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// Equal compares two tokens in constant time.
func Equal(got, want string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// Read reads a token file. It refuses files others can read or write.
func Read(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("token file %s: %w", path, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("token file %s: mode %04o lets other users read it; run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("token file %s: %w", path, err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty; delete it so the coordinator generates a new token", path)
	}
	return tok, nil
}

// LoadOrCreate returns the token stored at path, generating and storing a
// new one (mode 0600, written atomically) when the file does not exist.
// created says whether a new token was made.
func LoadOrCreate(path string) (tok string, created bool, err error) {
	tok, err = Read(path)
	if err == nil {
		return tok, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", false, err
	}
	tok, err = Generate()
	if err != nil {
		return "", false, err
	}
	// WriteNew, not a replacing write: never replace a token another
	// coordinator wrote in the meantime.
	if err := atomicfile.WriteNew(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", false, fmt.Errorf("token file %s: %w", path, err)
	}
	return tok, true, nil
}

// Resolve finds the token a client should send: flagValue if set, else
// $ADORA_AUTH_TOKEN, else the token file (ADORA_HOME/token). It returns ""
// without error when none is configured (a coordinator without auth).
func Resolve(flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if v := strings.TrimSpace(os.Getenv(EnvToken)); v != "" {
		return v, nil
	}
	p, err := paths.TokenFile()
	if err != nil {
		return "", nil
	}
	tok, err := Read(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return tok, err
}
