package sinks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Probe implements Prober: can this user create or append to the file?
func (c *FileSinkConfig) Probe(_ context.Context, name string) []Probe {
	if err := creatable(c.Path); err != nil {
		return []Probe{{Detail: err.Error(),
			Advice: fmt.Sprintf("create %s writable by uid %d, or point sinks.%s.path elsewhere", filepath.Dir(c.Path), os.Geteuid(), name)}}
	}
	return []Probe{{OK: true, Detail: c.Path + " writable"}}
}

// creatable reports whether the file sink can open path for appending:
// an existing regular file this user may write, or a missing one whose
// nearest existing ancestor directory this user may write and search.
func creatable(path string) error {
	st, err := os.Stat(path)
	if err == nil {
		if !st.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file", path)
		}
		if err := unix.Faccessat(unix.AT_FDCWD, path, unix.W_OK, unix.AT_EACCESS); err != nil {
			return fmt.Errorf("%s: not writable: %w", path, err)
		}
		return nil
	}
	dir := filepath.Dir(path)
	for {
		st, err := os.Stat(dir)
		if err == nil {
			if !st.IsDir() {
				return fmt.Errorf("%s: cannot create: %s is not a directory", path, dir)
			}
			if err := unix.Faccessat(unix.AT_FDCWD, dir, unix.W_OK|unix.X_OK, unix.AT_EACCESS); err != nil {
				return fmt.Errorf("%s: cannot create in %s: %w", path, dir, err)
			}
			return nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s: %w", path, err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return fmt.Errorf("%s: no existing directory above it", path)
		}
		dir = parent
	}
}
