package main

import "syscall"

// childProcAttr makes the kernel kill the SpiceDB server if the benchmark
// dies without stopping it.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
