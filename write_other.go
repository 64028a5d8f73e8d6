//go:build !linux

package main

import (
	"errors"
	"os"
)

// openUnnamed is Linux's alone (see write_linux.go): elsewhere the temporary file has a name.
func openUnnamed(string) (*os.File, error) { return nil, errors.ErrUnsupported }

// linkUnnamed is never called where openUnnamed fails.
func linkUnnamed(*os.File, string) error { return errors.ErrUnsupported }
