package reclaim

import (
	"golang.org/x/sys/unix"
)

// pageOut is madvise(start, length, MADV_PAGEOUT). The range is one of
// the process's own file mappings, so no Go memory is passed: the raw
// system call with addresses avoids forging a slice over it.
func pageOut(start, length uintptr) error {
	_, _, errno := unix.Syscall(unix.SYS_MADVISE, start, length, unix.MADV_PAGEOUT)
	switch errno {
	case 0:
		return nil
	case unix.EINVAL:
		return ErrUnsupported
	default:
		return errno
	}
}
