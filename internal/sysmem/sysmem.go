// Package sysmem reads memory figures of this process and of the machine from
// /proc, for the stats, the verify checklist and the memory trigger.
package sysmem

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ProcessRSS is the resident memory of process pid (0: this process), in bytes.
func ProcessRSS(pid int) (int64, error) {
	path := "/proc/self/status"
	if pid > 0 {
		path = fmt.Sprintf("/proc/%d/status", pid)
	}
	v, err := field(path, "VmRSS:")
	return v * 1024, err
}

// SystemUsedPercent is the share of the machine's memory in use
// (MemTotal - MemAvailable) / MemTotal, in percent.
func SystemUsedPercent() (float64, error) {
	total, err := field("/proc/meminfo", "MemTotal:")
	if err != nil {
		return 0, err
	}
	avail, err := field("/proc/meminfo", "MemAvailable:")
	if err != nil {
		return 0, err
	}
	if total == 0 {
		return 0, fmt.Errorf("MemTotal is 0")
	}
	return 100 * float64(total-avail) / float64(total), nil
}

// field reads a "Name:  123 kB" line of a /proc file, in kB.
func field(path, name string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) >= 2 && fs[0] == name {
			return strconv.ParseInt(fs[1], 10, 64)
		}
	}
	return 0, fmt.Errorf("%s has no %s line", path, name)
}
