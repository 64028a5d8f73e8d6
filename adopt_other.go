//go:build !unix

package main

import (
	"io/fs"
	"os"
)

// openTokenFile opens the token file found at start for reading. Symbolic links and owners are Unix
// notions: the release builds binaries for other systems, but the image, where adoption matters, is
// Linux.
func openTokenFile(path string) (*os.File, error) { return os.Open(path) }

// fileOwner returns -1: the owner is not known here (os.Getuid is -1 too).
func fileOwner(fs.FileInfo) int { return -1 }
