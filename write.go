package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// The token file is published in one of two ways, side by side below:
//
//   - by link(2) (replace false, the default): the file appears whole, and never replaces another;
//     link fails if anything is at the path, such as another run's token file;
//   - by rename(2) over the path (replace true: refresh mode, BEARER_TOKEN_FILE_REPLACE): a reader of
//     the path finds the old file or the new one, whole, and never nothing. A plain rename, not
//     Kubernetes' "..data" symbolic link swap: readers that watch the file with inotify (fsnotify) see
//     a rename but can miss a swapped link.
//
// Either way the token is first written to a temporary file in the same directory, chmod-ed (the umask
// plays no part) and flushed to disk. On Linux that file has no name at all (O_TMPFILE) until it is
// complete, so a process killed mid-write (SIGKILL, out of memory) leaves no copy of the token behind;
// file systems without O_TMPFILE get a named temporary file, removed on every return.
//
// Probe and temporary files have short names of their own, not derived from the target's, so that a
// target name of up to 255 bytes (NAME_MAX) works; a random suffix keeps two writers in one directory
// apart (two sidecars writing two tokens into one emptyDir).
const (
	probePrefix = ".token-probe-"
	tempPrefix  = ".token-tmp-"
)

// checkTokenDir publishes an empty probe file beside target exactly as [writeTokenFile] will publish
// the token (by link(2), or by rename(2) over an existing file when replace is true) and removes it,
// so that a missing or read-only directory, or a file system without hard links (vfat, exFAT, some FUSE
// mounts), fails the run before any request is sent. The probe lives only for these few calls: keeping
// it for the length of the request would leave it behind if the process were killed (SIGKILL, out of
// memory) while waiting for Entra. Its error names the directory and the cause.
func checkTokenDir(target string, replace bool) error {
	dir := filepath.Dir(target)
	probe := filepath.Join(dir, probePrefix+randomSuffix())
	err := publishFile(context.Background(), probe, 0o600, "", replace)
	if err == nil && replace {
		err = publishFile(context.Background(), probe, 0o600, "", replace) // over the first
	}
	if err == nil {
		err = os.Remove(probe)
	} else {
		_ = os.Remove(probe)
	}
	if err != nil {
		return fmt.Errorf("creating token file in %q: %w", dir, dirHint(dir, err))
	}
	return nil
}

// dirHint adds to err, a cause from creating a file in the token's directory dir, what to change in the
// pod: the directory's volume, the read-only root file system the examples set, or the user the
// program runs as (the image's 65532:65532).
func dirHint(dir string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: the directory does not exist: mount a volume there, such as an emptyDir shared with the main container", err)
	case errors.Is(err, syscall.EROFS):
		return fmt.Errorf("%w: with readOnlyRootFilesystem (or a volume mounted readOnly) nothing can be written there: mount a writable emptyDir at %q", err, dir)
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM) && !errors.Is(err, errNoHardLinks):
		return fmt.Errorf("%w: this program runs as uid %d, gid %d, which may not write there: mount an emptyDir at %q (writable by every user), or give the pod securityContext.fsGroup: %d", err, os.Getuid(), os.Getgid(), dir, os.Getgid())
	}
	return err
}

// writeTokenFile writes token, exactly its bytes, to target with permission bits mode, so that the
// file appears whole or not at all: by link(2) when replace is false, which fails if anything appeared
// at target meanwhile, such as another run's token file; by rename(2) over whatever regular file is at
// target when replace is true, then fsync of the directory. After ctx is done it publishes nothing. No
// temporary file is left when writeTokenFile returns. Where O_TMPFILE works there is none before
// either, but for the instant between link(2) and rename(2) when replace is true: rename needs a name.
func writeTokenFile(ctx context.Context, target string, mode fs.FileMode, token string, replace bool) error {
	err := publishFile(ctx, target, mode, token, replace)
	switch {
	case err == nil:
		return nil
	case !replace && errors.Is(err, fs.ErrExist):
		return fmt.Errorf("writing token file %q: it appeared while the token was requested: another run wrote it", target)
	}
	return fmt.Errorf("writing token file %q: %w", target, err)
}

// publishFile writes content to a temporary file in target's directory, gives it mode, flushes it,
// and unless ctx is done publishes it at target: [linkInto] or [renameInto]. Its errors are the bare
// causes ("file exists"); the callers name the file.
func publishFile(ctx context.Context, target string, mode fs.FileMode, content string, replace bool) error {
	dir := filepath.Dir(target)
	f, named, err := createTemp(dir)
	if err != nil {
		return err
	}
	defer func() {
		f.Close()
		if named {
			os.Remove(f.Name()) // gone already after a rename
		}
	}()
	if err := f.Chmod(mode); err != nil {
		return pathErr(err)
	}
	if _, err := f.WriteString(content); err != nil {
		return pathErr(err)
	}
	if err := f.Sync(); err != nil {
		return pathErr(err)
	}
	if err := context.Cause(ctx); err != nil {
		return err
	}
	if replace {
		err = renameInto(f, named, target)
	} else {
		err = linkInto(f, named, target)
	}
	switch {
	case !replace && (errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EOPNOTSUPP)):
		// The cause a user cannot guess from "operation not permitted".
		return fmt.Errorf("%w, with which the token file is published so that it never replaces another (link(2): %w): use a directory on another file system, such as an emptyDir", errNoHardLinks, pathErr(err))
	case err != nil:
		return pathErr(err)
	}
	syncDir(dir)
	return nil
}

// errNoHardLinks is in publishFile's error when link(2) is refused: a file system without hard links.
var errNoHardLinks = errors.New("the file system does not support hard links")

// linkInto publishes the complete temporary file f at target with link(2), which fails with
// fs.ErrExist if anything is there.
func linkInto(f *os.File, named bool, target string) error {
	if named {
		return os.Link(f.Name(), target)
	}
	return linkUnnamed(f, target)
}

// renameInto publishes the complete temporary file f at target with rename(2), atomically replacing
// a file there. An unnamed file first gets a temporary name to rename: link(2) cannot replace.
func renameInto(f *os.File, named bool, target string) error {
	if named {
		return os.Rename(f.Name(), target)
	}
	temp := filepath.Join(filepath.Dir(target), tempPrefix+randomSuffix())
	if err := linkUnnamed(f, temp); err != nil {
		return err
	}
	if err := os.Rename(temp, target); err != nil {
		_ = os.Remove(temp)
		return err
	}
	return nil
}

// createTemp returns a new, empty, writable temporary file in dir: unnamed (named false) where the
// system and file system have O_TMPFILE, else a named one with a [tempPrefix] name.
func createTemp(dir string) (f *os.File, named bool, err error) {
	if f, err := openUnnamed(dir); err == nil {
		return f, false, nil
	}
	f, err = os.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return nil, false, pathErr(err)
	}
	return f, true, nil
}

// randomSuffix returns a short random string for probe and temporary file names; it only has to keep
// writers apart, not to be unguessable: the files are created exclusively.
func randomSuffix() string {
	return strconv.FormatUint(rand.Uint64(), 36)
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
