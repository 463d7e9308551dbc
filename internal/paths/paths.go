// Package paths owns where adora keeps its files on a machine: ADORA_HOME
// (default $HOME/.adora) and the files in it.
//
//	$ADORA_HOME/
//	  token              coordinator bearer token (0600)
//	  coordinator.db     coordinator store (bbolt, 0600)
//	  artifacts/         node binaries uploaded for distribute: http
//	  daemon[-<machine>].id  a daemon's stable identity
package paths

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// EnvHome overrides the default home directory.
const EnvHome = "ADORA_HOME"

// Home returns ADORA_HOME, or $HOME/.adora.
func Home() (string, error) {
	if h := os.Getenv(EnvHome); h != "" {
		return filepath.Abs(h)
	}
	u, err := os.UserHomeDir()
	if err != nil || u == "" {
		return "", errors.New("adora home: neither ADORA_HOME nor HOME is set")
	}
	return filepath.Join(u, ".adora"), nil
}

// EnsureHome returns Home after creating it (mode 0700) if missing.
func EnsureHome() (string, error) {
	h, err := Home()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(h, 0o700); err != nil {
		return "", fmt.Errorf("adora home: %w", err)
	}
	return h, nil
}

func inHome(name string) (string, error) {
	h, err := Home()
	if err != nil {
		return "", err
	}
	return filepath.Join(h, name), nil
}

// TokenFile is where the coordinator keeps its bearer token.
func TokenFile() (string, error) { return inHome("token") }

// StoreFile is the coordinator's default bbolt store.
func StoreFile() (string, error) { return inHome("coordinator.db") }

// ArtifactsDir is where the coordinator keeps uploaded node binaries.
func ArtifactsDir() (string, error) { return inHome("artifacts") }

// DaemonIDFile is where a daemon started with machineID ("" for an unnamed
// daemon) keeps its stable identity, so two daemons on one machine with
// different machine ids keep different identities.
func DaemonIDFile(machineID string) (string, error) {
	if machineID == "" {
		return inHome("daemon.id")
	}
	return inHome("daemon-" + machineID + ".id")
}
