// Package atomicfile writes small files so that a reader, or the machine
// after a crash, sees either no file or the whole of it: the data goes to a
// temporary file in the same directory, which is fsynced and then put in
// place; the directory is fsynced last.
package atomicfile

import (
	"os"
	"path/filepath"
)

// WriteFile writes data to path with mode, creating path's directory (mode
// 0700) when missing. An existing file at path is replaced.
func WriteFile(path string, data []byte, mode os.FileMode) error {
	return write(path, data, mode, os.Rename)
}

// WriteNew is WriteFile that never replaces a file: when path exists (for
// instance written by another process meanwhile) it fails with an error
// that matches fs.ErrExist and leaves that file as it is.
func WriteNew(path string, data []byte, mode os.FileMode) error {
	return write(path, data, mode, os.Link)
}

func write(path string, data []byte, mode os.FileMode, place func(tmp, path string) error) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := place(f.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
