package main

import "syscall"

// oNoFollow makes open(2) fail on a symbolic link (O_NOFOLLOW) for the Azure Arc key file
// ([readArcKey]), which is read on Linux only.
const oNoFollow = syscall.O_NOFOLLOW
