package command

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/internal/paths"
)

// builtinCoordinatorPort sets the built-in cluster's coordinator port from
// $ADORA_COORDINATOR_PORT, as adora coordinator and the client commands
// read it, so that the one-machine cluster need not take 6013.
func builtinCoordinatorPort(c *config.Cluster) error {
	v := os.Getenv(envCoordinatorPort)
	if v == "" {
		return nil
	}
	p, err := strconv.Atoi(v)
	if err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%s=%q: give a port from 1 to 65535", envCoordinatorPort, v)
	}
	c.Coordinator.Port = p
	return nil
}

// applyStartedFile marks the coordinator apply started for the built-in
// cluster (its pid), so that destroy stops that one and not one started
// by adora up.
func applyStartedFile(home string) string { return filepath.Join(home, "up", "coordinator.apply") }

// markStartedByApply records that apply started the coordinator pid.
func markStartedByApply(home string, pid int) {
	if err := os.MkdirAll(filepath.Dir(applyStartedFile(home)), 0o700); err == nil {
		os.WriteFile(applyStartedFile(home), []byte(strconv.Itoa(pid)+"\n"), 0o600)
	}
}

// stopApplyCoordinator stops the coordinator apply started for the
// built-in cluster, once destroy removed everything: SIGTERM, then a wait
// of up to timeout for it to exit. Nothing to do when apply did not start
// one (or it is gone). It only signals an adora coordinator process.
func stopApplyCoordinator(timeout time.Duration) (int, error) {
	home, err := paths.Home()
	if err != nil {
		return 0, err
	}
	b, err := os.ReadFile(applyStartedFile(home))
	if err != nil {
		return 0, nil
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 || !isAdora(pid) {
		os.Remove(applyStartedFile(home))
		return 0, nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return pid, fmt.Errorf("stop the coordinator (pid %d): %w", pid, err)
	}
	for deadline := time.Now().Add(timeout); isAdora(pid); {
		if time.Now().After(deadline) {
			return pid, fmt.Errorf("the coordinator (pid %d) did not exit within %s of SIGTERM", pid, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
	os.Remove(applyStartedFile(home))
	if b, err := os.ReadFile(pidFile(home, "coordinator")); err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(pid) {
		os.Remove(pidFile(home, "coordinator"))
	}
	return pid, nil
}

// isBuiltin reports whether c is the built-in cluster: this machine alone.
func isBuiltin(c *config.Cluster) bool {
	if c == nil || len(c.Machines) == 0 {
		return false
	}
	for _, m := range c.Machines {
		if !m.Local {
			return false
		}
	}
	return true
}
