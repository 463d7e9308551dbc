package remote

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ELF e_machine values adora can run on.
const (
	emX86    = 3
	emARM    = 40
	emX86_64 = 62
	emARM64  = 183
	emRISCV  = 243
	emPPC64  = 21
	emS390   = 22
)

// ELFMachine reads the header of an ELF executable and returns its
// architecture in uname -m terms (x86_64, aarch64, arm, i386, riscv64,
// ppc64le, s390x). It refuses files that are not ELF executables.
func ELFMachine(header []byte) (string, error) {
	if len(header) < 20 || string(header[:4]) != "\x7fELF" {
		return "", errors.New("not an ELF executable")
	}
	var bo binary.ByteOrder
	switch header[5] {
	case 1:
		bo = binary.LittleEndian
	case 2:
		bo = binary.BigEndian
	default:
		return "", fmt.Errorf("ELF header: unknown byte order %d", header[5])
	}
	if t := bo.Uint16(header[16:18]); t != 2 && t != 3 { // ET_EXEC, ET_DYN
		return "", fmt.Errorf("ELF file type %d is not an executable", t)
	}
	switch m := bo.Uint16(header[18:20]); m {
	case emX86_64:
		return "x86_64", nil
	case emARM64:
		return "aarch64", nil
	case emARM:
		return "arm", nil
	case emX86:
		return "i386", nil
	case emRISCV:
		return "riscv64", nil
	case emPPC64:
		return "ppc64le", nil
	case emS390:
		return "s390x", nil
	default:
		return "", fmt.Errorf("ELF machine %d is not supported", m)
	}
}

// ArchMatches reports whether a binary of ELF architecture elf runs on a
// machine whose uname -m is uname.
func ArchMatches(elf, uname string) bool {
	uname = strings.TrimSpace(uname)
	switch elf {
	case "aarch64":
		return uname == "aarch64" || uname == "arm64"
	case "arm":
		return strings.HasPrefix(uname, "arm") && uname != "arm64"
	case "i386":
		return uname == "i386" || uname == "i686" || uname == "x86_64"
	default:
		return elf == uname
	}
}

// ArchMismatchError is a binary built for another architecture.
type ArchMismatchError struct {
	Machine, Binary, Host string
}

func (e *ArchMismatchError) Error() string {
	return fmt.Sprintf("binary is built for %s but machine %s is %s: build adora for that architecture (GOARCH) and pass it with --binary", e.Binary, e.Machine, e.Host)
}

// FileArch returns the ELF architecture of f.
func FileArch(f File) (string, error) {
	r, err := f.Open()
	if err != nil {
		return "", err
	}
	defer r.Close()
	hdr := make([]byte, 64)
	n, err := io.ReadFull(r, hdr)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return "", fmt.Errorf("read binary header: %w", err)
	}
	return ELFMachine(hdr[:n])
}

// Arch returns the machine's uname -m.
func (m *Machine) Arch(ctx context.Context) (string, error) {
	out, err := m.Run(ctx, "uname -m")
	if err != nil {
		return "", fmt.Errorf("uname on %s: %w", m.Target.ID, err)
	}
	return strings.TrimSpace(out), nil
}

// CheckArch refuses bin unless it is an ELF executable for m's
// architecture.
func CheckArch(ctx context.Context, m *Machine, bin File) error {
	elf, err := FileArch(bin)
	if err != nil {
		return fmt.Errorf("check binary for %s: %w", m.Target.ID, err)
	}
	host, err := m.Arch(ctx)
	if err != nil {
		return err
	}
	if !ArchMatches(elf, host) {
		return &ArchMismatchError{Machine: m.Target.ID, Binary: elf, Host: host}
	}
	return nil
}
