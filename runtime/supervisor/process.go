package supervisor

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// drainTimeout bounds how long log capture waits for the pipes of an exited
// node (a grandchild outside its process group could keep them open).
const drainTimeout = 2 * time.Second

// maxLineBytes is where a long output line is cut into several log lines.
const maxLineBytes = 64 << 10

// runOnce spawns one instance of a node and waits for it to exit, handling
// stop requests while it runs.
func (s *Supervisor) runOnce(n *node, restarts int) (exitInfo, error) {
	cmd, files, err := s.command(n, restarts)
	if err != nil {
		return exitInfo{}, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		closeFiles(files)
		return exitInfo{}, fmt.Errorf("start node %s: %w", n.spec.ID, err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		closeFiles(append(files, outR, outW))
		return exitInfo{}, fmt.Errorf("start node %s: %w", n.spec.ID, err)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	err = s.spawn(cmd)
	closeFiles(append(files, outW, errW))
	if err != nil {
		closeFiles([]*os.File{outR, errR})
		return exitInfo{}, fmt.Errorf("start node %s: %w", n.spec.ID, err)
	}
	pid := cmd.Process.Pid
	s.setStatus(n, Running, pid)
	if s.isStopping(n) {
		s.setStatus(n, Stopping, pid)
	}
	s.writePIDFile(n.spec.ID, pid)
	s.log.Info("node started", "node", n.spec.ID, "pid", pid, "restarts", restarts)
	s.emit(Event{Kind: EventStarted, Node: n.spec.ID, PID: pid, Restarts: restarts})

	var pumps sync.WaitGroup
	pumps.Add(2)
	go s.pump(n, outR, Stdout, &pumps)
	go s.pump(n, errR, Stderr, &pumps)
	waitCh := make(chan error, 1)
	go func() { waitCh <- cmd.Wait() }()

	s.awaitExit(n, pid, waitCh)
	// Leftover members of the node's process group go with it.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	deadline := time.Now().Add(drainTimeout)
	outR.SetReadDeadline(deadline)
	errR.SetReadDeadline(deadline)
	pumps.Wait()
	outR.Close()
	errR.Close()
	return exitOf(pid, cmd.ProcessState), nil
}

// command builds the exec.Cmd of one instance.
func (s *Supervisor) command(n *node, restarts int) (*exec.Cmd, []*os.File, error) {
	spec := n.spec
	path, err := ResolvePath(spec.Dir, spec.Path)
	if err != nil {
		return nil, nil, fmt.Errorf("start node %s: %w", spec.ID, err)
	}
	var extraEnv []string
	var files []*os.File
	if s.cfg.Hooks.Prepare != nil {
		extraEnv, files, err = s.cfg.Hooks.Prepare(spec.ID, restarts)
		if err != nil {
			return nil, nil, fmt.Errorf("prepare node %s: %w", spec.ID, err)
		}
	}
	cmd := exec.Command(path, spec.Args...)
	cmd.Dir = spec.Dir
	cmd.Env = MergeEnv(spec.Env, extraEnv)
	cmd.ExtraFiles = files
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	return cmd, files, nil
}

// awaitExit returns when the process has exited; a stop request while it
// runs escalates: stop request (or SIGTERM without a hook), then SIGTERM
// after grace, then SIGKILL after grace/2; force kills at once.
func (s *Supervisor) awaitExit(n *node, pid int, waitCh <-chan error) {
	select {
	case <-waitCh:
		return
	case <-n.stopCh:
	}
	s.mu.Lock()
	grace := n.grace
	n.status = Stopping
	s.mu.Unlock()
	kill := func(sig syscall.Signal) {
		s.log.Debug("signalling node", "node", n.spec.ID, "signal", sig)
		_ = syscall.Kill(-pid, sig)
	}
	select {
	case <-n.forceCh:
		kill(syscall.SIGKILL)
		<-waitCh
		return
	default:
	}
	delivered := s.cfg.Hooks.RequestStop != nil && s.cfg.Hooks.RequestStop(n.spec.ID)
	steps := []struct {
		after time.Duration
		sig   syscall.Signal
	}{{grace, syscall.SIGTERM}, {grace / 2, syscall.SIGKILL}}
	if !delivered {
		// Nothing can tell the node to stop: SIGTERM is step 1.
		kill(syscall.SIGTERM)
		steps = steps[1:]
	}
	for _, st := range steps {
		select {
		case <-waitCh:
			return
		case <-n.forceCh:
			kill(syscall.SIGKILL)
			<-waitCh
			return
		case <-s.clock.After(st.after):
			if st.sig == syscall.SIGKILL {
				s.log.Warn("node did not stop within its grace period, killing", "node", n.spec.ID)
			}
			kill(st.sig)
		}
	}
	<-waitCh
}

// pump copies one output stream of a node, line by line, to its log file
// and the OnLog callback (numbered by the file, in its order).
func (s *Supervisor) pump(n *node, r io.Reader, stream Stream, wg *sync.WaitGroup) {
	defer wg.Done()
	br := bufio.NewReaderSize(r, maxLineBytes)
	for {
		line, _, err := br.ReadLine()
		if len(line) > 0 || err == nil {
			ll := LogLine{Time: time.Now().UTC(), Node: n.spec.ID, Stream: stream, Line: string(line)}
			if n.logf == nil {
				if s.cfg.OnLog != nil {
					s.cfg.OnLog(ll)
				}
			} else if _, werr := n.logf.Record(ll, s.cfg.OnLog); werr != nil {
				s.log.Warn("write node log", "node", n.spec.ID, "err", werr)
			}
		}
		if err != nil {
			return
		}
	}
}

func closeFiles(fs []*os.File) {
	for _, f := range fs {
		if f != nil {
			f.Close()
		}
	}
}

func (s *Supervisor) pidFile(id string) string {
	return filepath.Join(s.cfg.PIDDir, id+".pid")
}

func (s *Supervisor) writePIDFile(id string, pid int) {
	if s.cfg.PIDDir == "" {
		return
	}
	start, err := ProcessStartTime(pid)
	if err != nil {
		s.log.Warn("record node pid", "node", id, "err", err)
		return
	}
	if err := os.MkdirAll(s.cfg.PIDDir, 0o755); err != nil {
		s.log.Warn("record node pid", "node", id, "err", err)
		return
	}
	content := fmt.Sprintf("%d %d %s\n", pid, start, bootID())
	if err := os.WriteFile(s.pidFile(id), []byte(content), 0o644); err != nil {
		s.log.Warn("record node pid", "node", id, "err", err)
	}
}

func (s *Supervisor) removePIDFile(id string) {
	if s.cfg.PIDDir != "" {
		os.Remove(s.pidFile(id))
	}
}

// ReapStale kills what is left of node processes recorded in the pid files
// under dir (recursively) by a daemon that died without cleaning up, and
// removes the files. Files written before the last reboot (another boot
// id) are only removed. A recorded leader that is alive is killed with its
// process group only if its start time matches the record (pid reuse); if
// the leader is gone, surviving members of its group are killed. It
// returns how many process groups it signalled.
func ReapStale(dir string, log *slog.Logger) (int, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := 0
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(path, ".pid") {
			return nil
		}
		if reapOne(path, log) {
			n++
		}
		return os.Remove(path)
	})
	if err != nil {
		return n, fmt.Errorf("reap stale nodes: %w", err)
	}
	return n, nil
}

func reapOne(path string, log *slog.Logger) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	pid, start, boot, ok := parsePIDFile(b)
	if !ok || boot != bootID() {
		return false // unreadable, or written before a reboot: those processes are gone
	}
	if cur, err := ProcessStartTime(pid); err == nil && cur != start {
		return false // the pid belongs to another process now
	}
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		return false
	}
	log.Warn("killed leftover node processes of a previous daemon", "pgid", pid, "file", path)
	return true
}

// bootID identifies the running kernel boot ("" if unknown).
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// parsePIDFile decodes "<pid> <start ticks> <boot id>"; pids 0 and 1 are
// never valid.
func parsePIDFile(b []byte) (pid int, start uint64, boot string, ok bool) {
	f := strings.Fields(string(b))
	if len(f) != 3 {
		return 0, 0, "", false
	}
	pid, err1 := strconv.Atoi(f[0])
	start, err2 := strconv.ParseUint(f[1], 10, 64)
	if err1 != nil || err2 != nil || pid <= 1 {
		return 0, 0, "", false
	}
	return pid, start, f[2], true
}
