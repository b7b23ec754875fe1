// Memory and CPU of a process, read from /proc.

package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// memory is a process's resident set: all of it (VmRSS), its own memory
// (RssAnon: heap, stacks) and the file pages it has mapped (RssFile: for
// wprelay, pages of the bbolt file, which bbolt reads through mmap; they
// are page cache the kernel can drop at any time).
type memory struct{ rss, anon, file int64 }

func (m memory) String() string {
	return fmt.Sprintf("%.1f MiB (own %.1f MiB, mapped store file %.1f MiB)", mib(m.rss), mib(m.anon), mib(m.file))
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func rss(pid int) memory {
	var m memory
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m
	}
	for _, line := range strings.Split(string(data), "\n") {
		name, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		switch name {
		case "VmRSS":
			m.rss = kb << 10
		case "RssAnon":
			m.anon = kb << 10
		case "RssFile":
			m.file = kb << 10
		}
	}
	return m
}

// cpuSample is where the CPU clocks stood: the server's (utime+stime of
// its process), the load generator's (this process) and the machine's
// idle and total time.
type cpuSample struct {
	server, client time.Duration
	idle, total    uint64
}

func sampleCPU(pid int) cpuSample {
	var c cpuSample
	if pid > 0 {
		c.server = procCPU(fmt.Sprintf("/proc/%d/stat", pid))
	}
	c.client = procCPU("/proc/self/stat")
	if data, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(data), "\n")
		for i, f := range strings.Fields(line)[1:] {
			v, _ := strconv.ParseUint(f, 10, 64)
			c.total += v
			if i == 3 || i == 4 { // idle, iowait
				c.idle += v
			}
		}
	}
	return c
}

// procCPU is a process's user+system time from its stat file.
func procCPU(path string) time.Duration {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	// The command name may hold spaces: fields count from after its ')'.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// cpu fills r's CPU figures from two samples around its run.
func (r *Result) cpu(a, b cpuSample) {
	if r.Requests == 0 {
		return
	}
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(r.Requests) }
	if b.server > 0 {
		r.ServerCPU = per(b.server - a.server)
	}
	r.ClientCPU = per(b.client - a.client)
	if b.total > a.total {
		r.Idle = 100 * float64(b.idle-a.idle) / float64(b.total-a.total)
	}
}
