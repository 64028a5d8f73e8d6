package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// pendingFile is a token file being written: a temporary file in the target's directory that
// [pendingFile.publish] links to the final name. It exists from before the token request, so that a
// missing or read-only directory fails the run before any request is sent.
type pendingFile struct {
	f      *os.File
	target string
	done   bool
}

// createPendingFile creates an empty temporary file beside target with permission bits mode, set with
// chmod so that the umask plays no part. Its error names the directory.
func createPendingFile(target string, mode fs.FileMode) (*pendingFile, error) {
	dir := filepath.Dir(target)
	f, err := os.CreateTemp(dir, "."+filepath.Base(target)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("creating token file in %q: %w", dir, err)
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("creating token file in %q: %w", dir, err)
	}
	return &pendingFile{f: f, target: target}, nil
}

// publish writes token, exactly its bytes, to the temporary file, flushes it to disk, and links it to
// the target name. link(2) fails if anything appeared at the target meanwhile, such as another run's
// token file, so a token file is never replaced and never seen half-written. After ctx is done it
// publishes nothing. Either way the temporary file is gone when publish returns.
func (p *pendingFile) publish(ctx context.Context, token string) (err error) {
	defer p.discard()
	if _, err := p.f.WriteString(token); err != nil {
		return fmt.Errorf("writing token file %q: %w", p.target, err)
	}
	if err := p.f.Sync(); err != nil {
		return fmt.Errorf("writing token file %q: %w", p.target, err)
	}
	if err := p.f.Close(); err != nil {
		return fmt.Errorf("writing token file %q: %w", p.target, err)
	}
	if err := context.Cause(ctx); err != nil {
		return fmt.Errorf("writing token file %q: %w", p.target, err)
	}
	if err := os.Link(p.f.Name(), p.target); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("writing token file %q: it appeared while the token was requested: another run wrote it", p.target)
		}
		return fmt.Errorf("writing token file %q: %w", p.target, err)
	}
	syncDir(filepath.Dir(p.target))
	return nil
}

// discard removes the temporary file; it is safe to call more than once.
func (p *pendingFile) discard() {
	if p.done {
		return
	}
	p.done = true
	p.f.Close()
	os.Remove(p.f.Name())
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
