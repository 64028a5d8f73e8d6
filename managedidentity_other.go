//go:build !linux

package main

// oNoFollow is Linux's alone (see managedidentity_linux.go): Azure Arc is refused elsewhere.
const oNoFollow = 0
