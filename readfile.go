package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// maxCredentialSize bounds every credential file this program reads (service principal, certificate,
// federated token), in bytes. Each is a few KiB at most; anything near this is not such a file.
const maxCredentialSize = 1 << 20

// errTooLarge is readCredentialFile's error for a file over maxCredentialSize.
var errTooLarge = fmt.Errorf("larger than %d bytes", maxCredentialSize)

// readCredentialFile returns the content of the regular file at path, following symbolic links (a
// Kubernetes Secret or projected volume links its files into a "..data" directory), through
// [readRegularFile], returning errTooLarge beyond maxCredentialSize bytes. Its errors do not repeat
// the path: the caller names it.
func readCredentialFile(path string) ([]byte, error) {
	return readRegularFile(path, maxCredentialSize, errTooLarge)
}

// readRegularFile returns the content of the regular file at path, following symbolic links. It
// refuses anything but a regular file before opening it, so that a FIFO cannot block the run, and
// reads at most limit bytes, returning tooLarge beyond. Its errors do not repeat the path.
func readRegularFile(path string, limit int64, tooLarge error) ([]byte, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, readHint(pathErr(err))
	}
	if info.IsDir() {
		return nil, directoryNotFile(path)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", info.Mode().Type())
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, readHint(pathErr(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, pathErr(err)
	}
	if int64(len(data)) > limit {
		return nil, tooLarge
	}
	return data, nil
}

// pathErr strips the operation and path from an *fs.PathError or *os.LinkError, which messages
// already quote, leaving the cause ("no such file or directory").
func pathErr(err error) error {
	if e, ok := errors.AsType[*fs.PathError](err); ok {
		return e.Err
	}
	if e, ok := errors.AsType[*os.LinkError](err); ok {
		return e.Err
	}
	return err
}

// readHint adds to err, a cause from reading a file, what to change in the pod when the cause is a
// permission: the program runs as the image's user (65532:65532), not as the files' owner, and a
// Secret's or projected token's files are root's.
func readHint(err error) error {
	if errors.Is(err, syscall.EACCES) {
		return fmt.Errorf("%w: this program runs as uid %d, gid %d: give the pod securityContext.fsGroup: %d, which makes a Secret's files readable by that group (with defaultMode 0440), or a defaultMode such as 0444", err, os.Getuid(), os.Getgid(), os.Getgid())
	}
	return err
}

// directoryNotFile is the error for a directory at path where a file is expected (the volume's mount
// path instead of a file in it): it names a file inside, the first that is not hidden (a Secret volume
// holds "..data" and its keys), or says the directory is empty.
func directoryNotFile(path string) error {
	entries, err := os.ReadDir(path)
	if err == nil {
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), ".") {
				return fmt.Errorf("a directory, not a file: name the file inside it, such as %q", filepath.Join(path, e.Name()))
			}
		}
		return errors.New("a directory, not a file: name a file inside it")
	}
	return errors.New("a directory, not a file: name the file inside it")
}
