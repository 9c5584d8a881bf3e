package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuMeter splits the machine's CPU time during a run into the authzd
// processes, this process (the load generator), the SpiceDB server process,
// the Postgres backends serving the benchmark's databases, and everything
// else (Postgres' own background processes, the kernel, whatever else the
// machine runs). It reads /proc, so it measures on Linux only; elsewhere it
// reports nothing.
type cpuMeter struct {
	authzdPids []int // every authzd instance: the one under load and the idle ones, whose background work counts too
	spicedbPid int
	pgPrefix   string // databases whose Postgres backends count as "postgres"
}

type cpuSample struct {
	at      time.Time
	machine time.Duration // busy time of all CPUs, steal included
	steal   time.Duration // time the hypervisor gave this VM's CPUs to someone else
	authzd  time.Duration
	self    time.Duration
	spicedb time.Duration
	pg      map[int]time.Duration // per backend serving the benchmark's databases
	ok      bool
}

// cpuUse is CPU time spent during a run.
type cpuUse struct {
	Wall time.Duration
	// Authzd is the authzd processes'; Self is this process's, the load generator.
	Authzd, Self, SpiceDB, PG, Other time.Duration
	// Steal is CPU time the hypervisor took from this VM: the machine's
	// cores were not ours for that long. Not part of Other.
	Steal time.Duration
	OK    bool
}

// clockTick is USER_HZ, the unit of /proc's CPU times; 100 on every Linux platform Go supports.
const clockTick = 10 * time.Millisecond

func (m *cpuMeter) sample() cpuSample {
	s := cpuSample{at: time.Now()}
	if m == nil {
		return s
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return s
	}
	s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s
	}
	line, _, _ := strings.Cut(string(stat), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 9 || f[0] != "cpu" {
		return s
	}
	var busy int64
	for i, v := range f[1:9] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
		if i == 7 {
			s.steal = time.Duration(n) * clockTick
		}
	}
	s.machine = time.Duration(busy) * clockTick
	for _, pid := range m.authzdPids {
		s.authzd += procCPU(pid)
	}
	if m.spicedbPid > 0 {
		s.spicedb = procCPU(m.spicedbPid)
	}
	if m.pgPrefix != "" {
		s.pg = backendsCPU(m.pgPrefix)
	}
	s.ok = true
	return s
}

// backendsCPU is the CPU time of each Postgres backend connected to a
// database whose name starts with prefix; Postgres titles each backend
// "postgres: <cluster>: <user> <database> <client> <state>". A backend that
// exits between two samples takes its time with it, so connections should be
// pooled (they are: SpiceDB's and authzd's pools).
func backendsCPU(prefix string) map[int]time.Duration {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	total := map[int]time.Duration{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !strings.HasPrefix(string(cmd), "postgres: ") || !strings.Contains(string(cmd), " "+prefix) {
			continue
		}
		total[pid] = procCPU(pid)
	}
	return total
}

// procCPU is a process's user+system time from /proc/<pid>/stat.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name; utime and stime are fields 14 and 15.
	_, rest, ok := strings.Cut(string(b), ") ")
	if !ok {
		return 0
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * clockTick
}

func (m *cpuMeter) use(a, b cpuSample) cpuUse {
	u := cpuUse{Wall: b.at.Sub(a.at), OK: a.ok && b.ok}
	if !u.OK {
		return u
	}
	u.Authzd, u.Self, u.SpiceDB = b.authzd-a.authzd, b.self-a.self, b.spicedb-a.spicedb
	for pid, t := range b.pg {
		u.PG += t - a.pg[pid] // a backend started during the run counts from zero
	}
	u.Steal = b.steal - a.steal
	u.Other = max(0, b.machine-a.machine-u.Steal-u.Authzd-u.Self-u.SpiceDB-u.PG)
	return u
}

// perOp renders CPU microseconds per operation as authzd/load/spicedb/postgres/other/steal.
func (u cpuUse) perOp(ops int) string {
	if !u.OK || ops == 0 {
		return "n/a"
	}
	us := func(d time.Duration) string { return strconv.Itoa(int(d.Microseconds() / int64(ops))) }
	return us(u.Authzd) + "/" + us(u.Self) + "/" + us(u.SpiceDB) + "/" + us(u.PG) + "/" + us(u.Other) + "/" + us(u.Steal)
}

// authzdPerOp is the authzd processes' CPU per operation in microseconds.
func (u cpuUse) authzdPerOp(ops int) float64 {
	if !u.OK || ops == 0 {
		return 0
	}
	return float64(u.Authzd.Microseconds()) / float64(ops)
}

// total renders all CPU time per operation in microseconds.
func (u cpuUse) total(ops int) string {
	if !u.OK || ops == 0 {
		return "n/a"
	}
	return strconv.Itoa(int((u.Authzd + u.Self + u.SpiceDB + u.PG + u.Other).Microseconds() / int64(ops)))
}

// stealShare is the share of the CPUs' time the hypervisor took, of cores × wall time.
func (u cpuUse) stealShare(cores int) float64 {
	if !u.OK || u.Wall <= 0 || cores <= 0 {
		return 0
	}
	return float64(u.Steal) / (float64(u.Wall) * float64(cores))
}

// cores is the share of the machine's CPUs in use, in cores.
func (u cpuUse) cores() float64 {
	if !u.OK || u.Wall <= 0 {
		return 0
	}
	return float64(u.Authzd+u.Self+u.SpiceDB+u.PG+u.Other) / float64(u.Wall)
}

// loadAvg is the 1-minute load average, or "n/a".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "n/a"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "n/a"
	}
	return strings.Join(f[:3], " ")
}
