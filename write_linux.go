package main

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"unsafe"
)

// oTmpfile is Linux's O_TMPFILE (__O_TMPFILE | O_DIRECTORY, include/uapi/asm-generic/fcntl.h), which
// the syscall package does not define; O_DIRECTORY differs between amd64 and arm64.
const oTmpfile = 0o20000000 | syscall.O_DIRECTORY

// atSymlinkFollow is AT_SYMLINK_FOLLOW for linkat(2) (include/uapi/linux/fcntl.h).
const atSymlinkFollow = 0x400

// openUnnamed returns a new file in dir that has no name (open(2) with O_TMPFILE, Linux 3.11 and
// later), for [linkUnnamed] to name once it is complete. It fails where the file system lacks
// O_TMPFILE (EOPNOTSUPP; EISDIR on old kernels), or where /proc is not mounted, through which
// linkUnnamed names it.
func openUnnamed(dir string) (*os.File, error) {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		return nil, err
	}
	fd, err := syscall.Open(dir, oTmpfile|syscall.O_WRONLY|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), filepath.Join(dir, "(unnamed)")), nil
}

// linkUnnamed gives the unnamed file f the name target with linkat(2) through /proc/self/fd/N and
// AT_SYMLINK_FOLLOW, which needs no privilege (AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH; see
// open(2), O_TMPFILE). Like link(2) it fails with EEXIST if anything is at target.
func linkUnnamed(f *os.File, target string) error {
	from, err := syscall.BytePtrFromString("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
	if err != nil {
		return err
	}
	to, err := syscall.BytePtrFromString(target)
	if err != nil {
		return err
	}
	atFDCWD := -0x64 // AT_FDCWD: paths are absolute or relative to the working directory
	_, _, errno := syscall.Syscall6(syscall.SYS_LINKAT, uintptr(atFDCWD), uintptr(unsafe.Pointer(from)),
		uintptr(atFDCWD), uintptr(unsafe.Pointer(to)), atSymlinkFollow, 0)
	runtime.KeepAlive(f)
	if errno != 0 {
		return errno
	}
	return nil
}
