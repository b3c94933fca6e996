// Package procmem trims the process's resident memory after start-up.
package procmem

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// madvPageout asks the kernel to reclaim pages now (Linux 5.4+).
const madvPageout = 21

// ReleaseExecutablePages hands the kernel back the pages of the skiff
// executable that start-up touched: one binary carries every component, and
// package initialisation reads type and descriptor data of all of them,
// though a node agent (say) never reads most again. The pages stay in the
// page cache, shared and clean, and fault back in if used. It returns the
// bytes advised; errors are ignored (the advice is only an optimisation).
func ReleaseExecutablePages() int64 {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0
	}
	defer f.Close()
	var total int64
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 6 || fields[5] != exe {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		// Only read-only mappings: writable data pages are the process's own.
		if !strings.HasPrefix(fields[1], "r-") {
			continue
		}
		if _, _, e := syscall.Syscall(syscall.SYS_MADVISE, uintptr(start), uintptr(end-start), madvPageout); e == 0 {
			total += int64(end - start)
		}
	}
	return total
}
