//go:build unix

package main

import (
	"io/fs"
	"os"
	"syscall"
)

// openTokenFile opens the token file found at start for reading without following a symbolic link,
// and without blocking on a FIFO put in its place.
func openTokenFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
}

// fileOwner returns the owner's user ID of info, or -1 when the system does not say.
func fileOwner(info fs.FileInfo) int {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}
