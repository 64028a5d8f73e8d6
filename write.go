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
// (SIGKILL, out of memory) while waiting for Entra. replace says how the file will be published
// (see [writeTokenFile]); this probe does not yet try link(2) or rename(2) themselves. Its error names
// the directory.
func checkTokenDir(target string, replace bool) error {
	_ = replace
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
// file appears whole or not at all: it writes a temporary file in the same directory, sets its mode
// with chmod (the umask plays no part), flushes it to disk, and publishes it under target, by
// [publishLink] (replace false: never replacing anything) or [publishRename] (replace true: atomically
// replacing a regular file). After ctx is done it publishes nothing. The temporary file is gone when
// writeTokenFile returns.
func writeTokenFile(ctx context.Context, target string, mode fs.FileMode, token string, replace bool) error {
	dir := filepath.Dir(target)
	f, err := os.CreateTemp(dir, "."+filepath.Base(target)+".tmp-*")
	if err != nil {
		return fmt.Errorf("creating token file in %q: %w", dir, pathErr(err))
	}
	defer func() {
		f.Close()
		os.Remove(f.Name())
	}()
	publish := publishLink
	if replace {
		publish = publishRename
	}
	if err := fill(f, mode, token); err != nil {
		return fmt.Errorf("writing token file %q: %w", target, pathErr(err))
	}
	if err := context.Cause(ctx); err != nil {
		return fmt.Errorf("writing token file %q: %w", target, err)
	}
	if err := publish(f.Name(), target); err != nil {
		if !replace && errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("writing token file %q: it appeared while the token was requested: another run wrote it", target)
		}
		return fmt.Errorf("writing token file %q: %w", target, pathErr(err))
	}
	syncDir(dir)
	return nil
}

// fill gives f mode, writes token to it, flushes and closes it: the steps of [writeTokenFile] before
// the file is published.
func fill(f *os.File, mode fs.FileMode, token string) error {
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if _, err := f.WriteString(token); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}

// publishLink gives the complete file tmp the name target with link(2), which fails if anything is
// at target: the one-shot's default, which never replaces a token file.
func publishLink(tmp, target string) error { return os.Link(tmp, target) }

// publishRename gives the complete file tmp the name target with rename(2), which atomically replaces
// a file there: a reader opening target finds the old token or the new one, never neither, an empty
// or a partial file. A plain rename, not Kubernetes' "..data" symbolic link swap, since readers that
// watch the file with inotify (fsnotify) see a rename but can miss a swapped link. Refresh mode and
// BEARER_TOKEN_FILE_REPLACE publish this way.
func publishRename(tmp, target string) error { return os.Rename(tmp, target) }

// syncDir flushes the directory entry of the new file to disk, so that a node crash does not lose a
// file the main container has already been told about. It is best effort: the token is already
// readable, and not every file system can sync a directory.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}
