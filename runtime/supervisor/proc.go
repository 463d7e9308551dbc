package supervisor

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of CPU times in /proc/<pid>/stat. It is
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// ProcStat is what /proc says about one process.
type ProcStat struct {
	CPUTime   time.Duration // user + system time consumed so far
	RSS       uint64        // resident set size in bytes
	StartTime uint64        // clock ticks after boot; identifies the process with its pid
}

// ReadProcStat reads /proc/<pid>/stat and /proc/<pid>/statm.
func ReadProcStat(pid int) (ProcStat, error) {
	fields, err := statFields(pid)
	if err != nil {
		return ProcStat{}, err
	}
	// fields[0] is field 3 (state) of proc(5).
	utime, _ := strconv.ParseUint(fields[11], 10, 64)
	stime, _ := strconv.ParseUint(fields[12], 10, 64)
	start, _ := strconv.ParseUint(fields[19], 10, 64)
	st := ProcStat{
		CPUTime:   time.Duration(utime+stime) * time.Second / clockTicks,
		StartTime: start,
	}
	statm, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", pid))
	if err != nil {
		return st, fmt.Errorf("read process %d memory: %w", pid, err)
	}
	if f := strings.Fields(string(statm)); len(f) > 1 {
		pages, _ := strconv.ParseUint(f[1], 10, 64)
		st.RSS = pages * uint64(os.Getpagesize())
	}
	return st, nil
}

// statFields returns the fields of /proc/<pid>/stat after the command name.
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, fmt.Errorf("read process %d stat: %w", pid, err)
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("read process %d stat: malformed", pid)
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 20 {
		return nil, fmt.Errorf("read process %d stat: %d fields", pid, len(fields))
	}
	return fields, nil
}

// ProcessStartTime returns the start time of pid (clock ticks after boot),
// which with the pid identifies a process across pid reuse.
func ProcessStartTime(pid int) (uint64, error) {
	fields, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(fields[19], 10, 64)
}
