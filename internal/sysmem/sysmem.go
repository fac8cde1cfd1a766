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

// SystemUsedPercent is the share of the host's memory in use by every process
// (MemTotal - MemAvailable) / MemTotal, in percent: what the stats show as
// the host's. The memory trigger reads ProcessUsage instead.
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

// Usage is this process's memory against the limits that can end it.
type Usage struct {
	// RSS is the process's resident memory; Limit the memory it may have: its
	// cgroup's limit, or the machine's memory when the cgroup has none.
	RSS, Limit int64
	// CgroupUsed and CgroupLimit are the cgroup's figures (0 when the process
	// is in no cgroup with a memory limit).
	CgroupUsed, CgroupLimit int64
}

// Percent is the higher of the process's share of its limit and the
// cgroup's share of its own: what the memory trigger compares, so that
// other processes on the host (a load generator, a neighbour) never make
// this one roll back.
func (u Usage) Percent() float64 {
	p := 0.0
	if u.Limit > 0 {
		p = 100 * float64(u.RSS) / float64(u.Limit)
	}
	if u.CgroupLimit > 0 {
		p = max(p, 100*float64(u.CgroupUsed)/float64(u.CgroupLimit))
	}
	return p
}

// ProcessUsage reads this process's memory and its cgroup's (v1 or v2).
func ProcessUsage() (Usage, error) {
	rss, err := ProcessRSS(0)
	if err != nil {
		return Usage{}, err
	}
	u := Usage{RSS: rss}
	u.CgroupUsed, u.CgroupLimit = cgroupMemory()
	u.Limit = u.CgroupLimit
	if u.Limit == 0 {
		total, err := field("/proc/meminfo", "MemTotal:")
		if err != nil {
			return Usage{}, err
		}
		u.Limit = total * 1024
	}
	return u, nil
}

// unlimited: cgroup v1 writes "no limit" as a number near 2^63.
const unlimited = int64(1) << 60

// cgroupMemory returns the usage and limit of this process's memory cgroup,
// or zeros when there is no limit or no cgroup to read.
func cgroupMemory() (used, limit int64) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var dirs []string
		var usedFile, limitFile string
		switch {
		case parts[0] == "0" && parts[1] == "":
			dirs = []string{"/sys/fs/cgroup" + parts[2], "/sys/fs/cgroup"}
			usedFile, limitFile = "memory.current", "memory.max"
		case strings.Contains(","+parts[1]+",", ",memory,"):
			dirs = []string{"/sys/fs/cgroup/memory" + parts[2], "/sys/fs/cgroup/memory"}
			usedFile, limitFile = "memory.usage_in_bytes", "memory.limit_in_bytes"
		default:
			continue
		}
		// In a cgroup namespace the process's path may not exist under the
		// mount, whose root is then its own cgroup.
		for _, dir := range dirs {
			l, lerr := readInt(dir + "/" + limitFile)
			u, uerr := readInt(dir + "/" + usedFile)
			if lerr != nil || uerr != nil {
				continue
			}
			if l <= 0 || l >= unlimited {
				return 0, 0
			}
			return u, l
		}
	}
	return 0, 0
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return unlimited, nil
	}
	return strconv.ParseInt(s, 10, 64)
}
