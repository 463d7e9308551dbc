package shm

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// DefaultThreshold is the payload size from which data travels through
// shared memory instead of inline frames (one page).
const DefaultThreshold = 4096

const requiredSeals = unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_SEAL

// Region is a memfd-backed shared-memory mapping. The memfd is sealed
// against resizing, so a peer cannot truncate it under a reader (which would
// raise SIGBUS). A Region is not safe for concurrent Close; its Data may be
// read and written concurrently by the caller's own rules.
type Region struct {
	file *os.File
	Data []byte
}

// pageRound rounds n up to a whole number of pages (at least one).
func pageRound(n int) int {
	ps := os.Getpagesize()
	if n <= 0 {
		return ps
	}
	return (n + ps - 1) / ps * ps
}

// NewRegion creates a sealed memfd of at least size bytes and maps it
// read-write.
func NewRegion(name string, size int) (*Region, error) {
	size = pageRound(size)
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), name)
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		f.Close()
		return nil, fmt.Errorf("size region to %d bytes: %w", size, err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, requiredSeals); err != nil {
		f.Close()
		return nil, fmt.Errorf("seal region: %w", err)
	}
	data, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("map region: %w", err)
	}
	return &Region{file: f, Data: data}, nil
}

// CheckRegionFile verifies that f is a sealed memfd of exactly size bytes
// and returns its size. Mapping an unsealed file is refused: its owner could
// shrink it and crash the reader.
func CheckRegionFile(f *os.File, size uint64) error {
	seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	if err != nil {
		return fmt.Errorf("region seals: %w", err)
	}
	if seals&(unix.F_SEAL_SHRINK|unix.F_SEAL_GROW) != unix.F_SEAL_SHRINK|unix.F_SEAL_GROW {
		return errors.New("region is not sealed against resizing")
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("region stat: %w", err)
	}
	if uint64(st.Size) != size || size == 0 {
		return fmt.Errorf("region size is %d bytes, announced %d", st.Size, size)
	}
	return nil
}

// MapRegion maps a region received from a peer, read-only. It checks the
// seals and the size first. The caller keeps ownership of f (the mapping
// stays valid after f is closed).
func MapRegion(f *os.File, size uint64) ([]byte, error) {
	if err := CheckRegionFile(f, size); err != nil {
		return nil, err
	}
	data, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map region: %w", err)
	}
	return data, nil
}

// Unmap releases a mapping returned by MapRegion.
func Unmap(data []byte) error {
	if data == nil {
		return nil
	}
	return unix.Munmap(data)
}

// File is the memfd behind the region (to pass to another process).
func (r *Region) File() *os.File { return r.file }

// Size is the mapped size in bytes.
func (r *Region) Size() int { return len(r.Data) }

// Close unmaps the region and closes the memfd. Peers that mapped it keep
// their mapping; the memory is freed when the last one goes.
func (r *Region) Close() error {
	err := unix.Munmap(r.Data)
	r.Data = nil
	if cerr := r.file.Close(); err == nil {
		err = cerr
	}
	return err
}
