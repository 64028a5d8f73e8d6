package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// checkTokenDir makes sure a file can be created beside target, so that a missing or read-only
// directory fails the run before any request is sent. It creates a temporary file and removes it at
// once: keeping it for the length of the request would leave it behind if the process were killed
// (SIGKILL, out of memory) while waiting for Entra. Its error names the directory.
func checkTokenDir(target string) error {
	dir := filepath.Dir(target)
	f, err := os.CreateTemp(dir, "."+filepath.Base(target)+".probe-*")
	if err != nil {
		return fmt.Errorf("creating token file in %q: %w", dir, pathErr(err))
	}
	f.Close()
	if err := os.Remove(f.Name()); err != nil {
		return fmt.Errorf("creating token file in %q: %w", dir, pathErr(err))
	}
	return nil
}

// writeTokenFile writes token, exactly its bytes, to target with permission bits mode, so that the
// file appears whole or not at all and never replaces another: it writes a temporary file in the same
// directory, sets its mode with chmod (the umask plays no part), flushes it to disk, and links it to
// target. link(2) fails if anything appeared at target meanwhile, such as another run's token file.
// After ctx is done it publishes nothing. The temporary file is gone when writeTokenFile returns.
func writeTokenFile(ctx context.Context, target string, mode fs.FileMode, token string) error {
	dir := filepath.Dir(target)
	f, err := os.CreateTemp(dir, "."+filepath.Base(target)+".tmp-*")
	if err != nil {
		return fmt.Errorf("creating token file in %q: %w", dir, pathErr(err))
	}
	defer func() {
		f.Close()
		os.Remove(f.Name())
	}()
	if err := fillAndLink(ctx, f, mode, token, target); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("writing token file %q: it appeared while the token was requested: another run wrote it", target)
		}
		return fmt.Errorf("writing token file %q: %w", target, pathErr(err))
	}
	syncDir(dir)
	return nil
}

// fillAndLink gives f mode, writes token to it, flushes and closes it, and links it to target unless
// ctx is done: the steps of [writeTokenFile], which names the file in the error.
func fillAndLink(ctx context.Context, f *os.File, mode fs.FileMode, token, target string) error {
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if _, err := f.WriteString(token); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return os.Link(f.Name(), target)
}

// syncDir flushes the directory entry of the new file to disk, so that a node crash does not lose a
// file the main container has already been told about. It is best effort: the token is already
// readable, and not every file system can sync a directory.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}
