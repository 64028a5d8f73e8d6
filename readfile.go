package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
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
		return nil, pathErr(err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", info.Mode().Type())
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, pathErr(err)
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
