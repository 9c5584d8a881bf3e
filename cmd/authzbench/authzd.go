package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// authzd runs as its own process, as it is deployed: this tree's cmd/authzd,
// built once per benchmark run. Its CPU time is then read off /proc for that
// process alone, apart from the load generator's, and its garbage collector
// marks its own heap only; each instance serves Go's profiler on a loopback
// listener of its own (AUTHZ_DEBUG_ADDR) for -profile-dir.

// moduleRoot is the directory of the authzd module the benchmark runs from.
func moduleRoot(ctx context.Context, what string) (string, error) {
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(gomod)) == "" || strings.TrimSpace(string(gomod)) == os.DevNull {
		return "", fmt.Errorf("building %s needs the authzd module (run from the repository): go env GOMOD: %v", what, err)
	}
	return filepath.Dir(strings.TrimSpace(string(gomod))), nil
}

// goEnv is the environment of the go commands the benchmark runs: its own,
// and when it sets no GOTOOLCHAIN, "auto", so that go.mod's toolchain line is
// honoured (the Makefile exports the same) even where the installed go
// defaults to its local toolchain.
func goEnv() []string {
	if os.Getenv("GOTOOLCHAIN") != "" {
		return os.Environ()
	}
	return append(os.Environ(), "GOTOOLCHAIN=auto")
}

// authzdBinary builds this tree's cmd/authzd into dir.
func authzdBinary(ctx context.Context, dir string, progress io.Writer) (string, error) {
	root, err := moduleRoot(ctx, "authzd")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "authzd")
	fmt.Fprintf(progress, "building cmd/authzd into %s\n", bin)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/authzd")
	cmd.Dir, cmd.Env = root, goEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/authzd: %w\n%s", err, out)
	}
	return bin, nil
}

// authzdServer is one authzd process listening on loopback.
type authzdServer struct {
	*child
	URL       string // base URL of the API
	DebugAddr string // the profiler's host:port
}

// startAuthzd starts bin with the benchmark's environment plus env (later
// entries win), and waits until /readyz answers 200. Its log goes to
// progress and is kept for error messages.
func startAuthzd(ctx context.Context, bin string, env []string, progress io.Writer) (*authzdServer, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	s := &authzdServer{URL: fmt.Sprintf("http://127.0.0.1:%d", ports[0]), DebugAddr: fmt.Sprintf("127.0.0.1:%d", ports[1])}
	log := &tailBuffer{max: 16 << 10}
	cmd := exec.Command(bin)
	cmd.Env = append(append(os.Environ(), env...),
		fmt.Sprintf("AUTHZ_HTTP_ADDR=127.0.0.1:%d", ports[0]), "AUTHZ_DEBUG_ADDR="+s.DebugAddr)
	cmd.Stderr = io.MultiWriter(log, progress)
	if s.child, err = startChild("authzd", s.URL, cmd, log); err != nil {
		return nil, err
	}
	if err := s.waitReady(ctx, 90*time.Second, s.ready); err != nil {
		_ = s.Stop()
		return nil, err
	}
	return s, nil
}

// ready asks /readyz.
func (s *authzdServer) ready(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

// Profile fetches a CPU profile of the process covering the next d.
func (s *authzdServer) Profile(ctx context.Context, d time.Duration, path string) error {
	return fetchProfile(ctx, s.DebugAddr, d, path)
}

// Allocs writes the process's cumulative allocation profile to path.
func (s *authzdServer) Allocs(ctx context.Context, path string) error {
	return fetchTo(ctx, fmt.Sprintf("http://%s/debug/pprof/allocs", s.DebugAddr), path)
}

// Heap writes the process's heap profile (live objects as of the last GC) to path.
func (s *authzdServer) Heap(ctx context.Context, path string) error {
	return fetchTo(ctx, fmt.Sprintf("http://%s/debug/pprof/heap?gc=1", s.DebugAddr), path)
}

// Stop shuts the process down as an operator would (SIGINT: authzd drains,
// commits its audit rows and closes), killing it after 30 s. It reports a
// shutdown that failed.
func (s *authzdServer) Stop() error {
	if s == nil {
		return nil
	}
	return s.stop(30 * time.Second)
}

// fetchProfile fetches a CPU profile covering the next d from a Go
// process's net/http/pprof at addr.
func fetchProfile(ctx context.Context, addr string, d time.Duration, path string) error {
	secs := max(1, int(d.Round(time.Second).Seconds()))
	return fetchTo(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs), path)
}

// fetchTo GETs url into the file path.
func fetchTo(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
