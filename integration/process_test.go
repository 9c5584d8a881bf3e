package integration

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// authzdBinary builds ./cmd/authzd once per run into the suite's scratch directory.
var authzdBinary = sync.OnceValues(func() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(suite.binDir, "authzd")
	if out, err := goCmd(root, "build", "-o", bin, "./cmd/authzd").CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/authzd: %w\n%s", err, out)
	}
	return bin, nil
})

// mustAuthzdBinary returns the authzd binary of this tree.
func mustAuthzdBinary(tb testing.TB) string {
	tb.Helper()
	bin, err := authzdBinary()
	if err != nil {
		tb.Fatal(err)
	}
	return bin
}

// authzdProcess is authzd running as a child process, configured only through its environment.
type authzdProcess struct {
	cmd     *exec.Cmd
	URL     string
	logPath string
	exited  chan struct{}
	waitErr error
}

// startAuthzdProcess runs the authzd binary with env (AUTHZ_* variables; the caller's own AUTHZ_*
// variables are not inherited) and waits until /readyz answers 200.
func startAuthzdProcess(tb testing.TB, env map[string]string) *authzdProcess {
	tb.Helper()
	bin := mustAuthzdBinary(tb)
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // the free port can be taken between probe and listen
		addr := mustFreeAddr(tb)
		p := &authzdProcess{URL: "http://" + addr, logPath: filepath.Join(tb.TempDir(), "authzd.log"), exited: make(chan struct{})}
		logFile, err := os.Create(p.logPath)
		if err != nil {
			tb.Fatal(err)
		}
		p.cmd = exec.Command(bin)
		p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
		p.cmd.Env = []string{"AUTHZ_HTTP_ADDR=" + addr}
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "AUTHZ_") {
				p.cmd.Env = append(p.cmd.Env, kv)
			}
		}
		for k, v := range env {
			p.cmd.Env = append(p.cmd.Env, k+"="+v)
		}
		if err := p.cmd.Start(); err != nil {
			logFile.Close()
			tb.Fatalf("start authzd: %v", err)
		}
		go func() {
			p.waitErr = p.cmd.Wait()
			logFile.Close()
			close(p.exited)
		}()
		if err := p.waitReady(90 * time.Second); err != nil {
			p.kill()
			lastErr = fmt.Errorf("%w\nlog tail:\n%s", err, tailFile(p.logPath, 4096))
			continue
		}
		tb.Cleanup(p.kill)
		tb.Cleanup(func() { // runs before the TempDir holding the log is removed
			if tb.Failed() {
				tb.Logf("authzd process log (tail):\n%s", tailFile(p.logPath, 8192))
			}
		})
		return p
	}
	tb.Fatalf("authzd process not ready: %v", lastErr)
	return nil
}

func (p *authzdProcess) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case <-p.exited:
			return fmt.Errorf("authzd exited before ready: %v", p.waitErr)
		default:
		}
		resp, err := hc.Get(p.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("/readyz answered %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("authzd at %s not ready after %s: %v", p.URL, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits for the process to be gone. It is safe to call twice. (authzbench's
// spicedbServer.Stop looks alike but stops gracefully, and a test cannot share code with a command.)
func (p *authzdProcess) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
	}
}
