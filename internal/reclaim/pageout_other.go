//go:build !linux

package reclaim

func pageOut(uintptr, uintptr) error { return ErrUnsupported }
