package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"time"
)

// child is a server process the benchmark started (SpiceDB, authzd): its
// output is kept for error messages, and the kernel kills it if the
// benchmark dies without stopping it.
type child struct {
	name    string // for messages: "spicedb", "authzd"
	addr    string // where it serves, for messages
	cmd     *exec.Cmd
	log     *tailBuffer
	exited  chan struct{}
	exitErr error
}

// startChild starts cmd, whose Stdout and Stderr the caller may set (to
// c.log or beyond; unset, they go to c.log).
func startChild(name, addr string, cmd *exec.Cmd, log *tailBuffer) (*child, error) {
	c := &child{name: name, addr: addr, cmd: cmd, log: log, exited: make(chan struct{})}
	if cmd.Stdout == nil {
		cmd.Stdout = log
	}
	if cmd.Stderr == nil {
		cmd.Stderr = log
	}
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		c.exitErr = cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

// Pid is the process id, for CPU accounting.
func (c *child) Pid() int { return c.cmd.Process.Pid }

// waitReady polls ready every 100 ms until it returns nil, the process
// exits, ctx ends or limit passes.
func (c *child) waitReady(ctx context.Context, limit time.Duration, ready func(ctx context.Context) error) error {
	deadline := time.Now().Add(limit)
	for {
		err := ready(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-c.exited:
			return fmt.Errorf("%s exited during startup: %v\n%s", c.name, c.exitErr, c.log.String())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer on %s within %s: %v\n%s", c.name, c.addr, limit, err, c.log.String())
		}
	}
}

// stop interrupts the process (SIGINT: an orderly shutdown) and kills it
// after grace. It reports a process that had to be killed or exited with an
// error.
func (c *child) stop(grace time.Duration) error {
	if c == nil {
		return nil
	}
	select {
	case <-c.exited:
	default:
		_ = c.cmd.Process.Signal(os.Interrupt)
		select {
		case <-c.exited:
		case <-time.After(grace):
			_ = c.cmd.Process.Kill()
			<-c.exited
			return fmt.Errorf("%s on %s did not stop within %s of SIGINT\n%s", c.name, c.addr, grace, c.log.String())
		}
	}
	if c.exitErr != nil {
		return fmt.Errorf("%s on %s: %w\n%s", c.name, c.addr, c.exitErr, c.log.String())
	}
	return nil
}
