package integration

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"gopkg.in/yaml.v3"
)

// composeProject runs docker-compose.yml as one project of its own, with this run's labels on every
// container, network and volume (through an override file), so that a failed or killed run is cleaned
// up like the rest of the Docker world.
type composeProject struct {
	tb      testing.TB
	cli     []string // "docker compose" (v2) or "docker-compose" (v1)
	v2      bool
	name    string
	files   []string
	env     []string // the settings and secrets: given in the environment, never on a command line
	d       *dockerWorld
	baseURL string
	token   string
}

// composeCLI finds Compose: the v2 plugin (docker compose) or the v1 program (docker-compose), which is
// what Debian 12 packages.
func composeCLI() (cli []string, v2 bool, err error) {
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}, true, nil
	}
	if p, err := exec.LookPath("docker-compose"); err == nil {
		return []string{p}, false, nil
	}
	return nil, false, fmt.Errorf("neither `docker compose` nor docker-compose is installed")
}

func startCompose(tb testing.TB, d *dockerWorld) *composeProject {
	tb.Helper()
	cli, v2, err := composeCLI()
	if err != nil {
		tb.Fatal(err)
	}
	root, err := moduleRoot()
	if err != nil {
		tb.Fatal(err)
	}
	authzdImage := envOr(envAuthzdImage, defaultAuthzdImage())
	if !imagePresent(context.Background(), d.cli, authzdImage) {
		tb.Fatalf("no image %s: run `make images`", authzdImage)
	}
	_, port, err := net.SplitHostPort(mustFreeAddr(tb))
	if err != nil {
		tb.Fatal(err)
	}
	p := &composeProject{
		tb:      tb,
		cli:     cli,
		v2:      v2,
		name:    "authzd-it-" + runLabels()[labelRun],
		files:   []string{filepath.Join(root, "docker-compose.yml"), writeLabelOverride(tb)},
		d:       d,
		baseURL: "http://127.0.0.1:" + port,
		token:   "it-admin-" + randomHex(16),
	}
	p.env = append(os.Environ(),
		"SPICEDB_PRESHARED_KEY=it-"+randomHex(16),
		"AUTHZ_ADMIN_TOKEN="+p.token,
		"POSTGRES_PASSWORD=it-"+randomHex(16),
		envPostgresImage+"="+d.postgresImage,
		envSpiceDBImage+"="+d.spicedbImage,
		envAuthzdImage+"="+authzdImage,
		"AUTHZ_PORT="+port,
	)
	tb.Cleanup(p.down)
	tb.Logf("compose: %s, project %s, images %s %s %s", strings.Join(cli, " "), p.name, d.postgresImage, d.spicedbImage, authzdImage)

	start := time.Now()
	if v2 {
		p.mustRun(5*time.Minute, "up", "-d", "--wait", "--no-build")
	} else {
		p.mustRun(5*time.Minute, "up", "-d", "--no-build")
	}
	p.mustWaitHealthy(3 * time.Minute)
	tb.Logf("compose: up and healthy in %s", time.Since(start).Round(time.Millisecond))
	return p
}

// writeLabelOverride writes a compose override that puts this run's labels on everything.
func writeLabelOverride(tb testing.TB) string {
	tb.Helper()
	labels := runLabels()
	services := map[string]any{}
	for _, s := range []string{"postgres", "spicedb-migrate", "spicedb", "authzd"} {
		services[s] = map[string]any{"labels": labels}
	}
	b, err := yaml.Marshal(map[string]any{
		"services": services,
		"volumes":  map[string]any{"pgdata": map[string]any{"labels": labels}},
		"networks": map[string]any{"default": map[string]any{"labels": labels}},
	})
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(tb.TempDir(), "labels.override.yml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

func (p *composeProject) command(ctx context.Context, args ...string) *exec.Cmd {
	full := append([]string{}, p.cli[1:]...)
	full = append(full, "-p", p.name)
	for _, f := range p.files {
		full = append(full, "-f", f)
	}
	full = append(full, args...)
	cmd := exec.CommandContext(ctx, p.cli[0], full...)
	cmd.Env = p.env
	return cmd
}

func (p *composeProject) run(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := p.command(ctx, args...).CombinedOutput()
	return string(out), err
}

func (p *composeProject) mustRun(timeout time.Duration, args ...string) {
	p.tb.Helper()
	if out, err := p.run(timeout, args...); err != nil {
		p.tb.Fatalf("compose %s: %v\n%s\n%s", strings.Join(args, " "), err, out, p.logs())
	}
}

func (p *composeProject) logs() string {
	out, _ := p.run(time.Minute, "logs", "--no-color", "--tail", "40")
	return out
}

// mustWaitHealthy waits until postgres, spicedb and authzd report healthy, spicedb-migrate exited 0,
// and authzd's /readyz answers 200 on the published port.
func (p *composeProject) mustWaitHealthy(timeout time.Duration) {
	p.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var state map[string]string
	for {
		state = p.serviceStates(ctx)
		ok := state["spicedb-migrate"] == "exited 0"
		for _, s := range []string{"postgres", "spicedb", "authzd"} {
			ok = ok && state[s] == "healthy"
		}
		if ok && readyz(ctx, p.baseURL) == nil {
			return
		}
		if strings.HasPrefix(state["spicedb-migrate"], "exited ") && state["spicedb-migrate"] != "exited 0" {
			break
		}
		select {
		case <-ctx.Done():
			p.tb.Fatalf("compose services not healthy after %s: %v\n%s", timeout, state, p.logs())
		case <-time.After(500 * time.Millisecond):
		}
	}
	p.tb.Fatalf("spicedb-migrate failed: %v\n%s", state, p.logs())
}

// serviceStates maps each service to "healthy", "starting", "unhealthy", "running", or "exited N".
func (p *composeProject) serviceStates(ctx context.Context) map[string]string {
	states := map[string]string{}
	cs, err := p.d.cli.ContainerList(ctx, client.ContainerListOptions{
		All:     true,
		Filters: make(client.Filters).Add("label", "com.docker.compose.project="+p.name),
	})
	if err != nil {
		return states
	}
	for _, c := range cs.Items {
		svc := c.Labels["com.docker.compose.service"]
		info, err := p.d.cli.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
		if err != nil || info.Container.State == nil {
			continue
		}
		st := info.Container.State
		switch {
		case st.Health != nil && st.Running:
			states[svc] = string(st.Health.Status)
		case st.Running:
			states[svc] = "running"
		default:
			states[svc] = fmt.Sprintf("exited %d", st.ExitCode)
		}
	}
	return states
}

func readyz(ctx context.Context, base string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("readyz: %s", resp.Status)
	}
	return nil
}

// down removes the project with its volume, and anything of it a failed `down` left behind.
func (p *composeProject) down() {
	if out, err := p.run(3*time.Minute, "down", "-v", "--remove-orphans", "-t", "5"); err != nil {
		p.tb.Errorf("compose down -v: %v\n%s", err, out)
	}
	removeLabelled(context.Background(), p.d.cli,
		make(client.Filters).Add("label", "com.docker.compose.project="+p.name), nil)
}

// TestCompose runs docker-compose.yml for real with the world's images: up (waiting for every
// healthcheck), provision a tenant, check, read the audit, restart the authzd container and see the
// state and the audit survive, down -v.
func TestCompose(t *testing.T) {
	w := mustWorld(t)
	if w.docker == nil {
		t.Skip("compose runs in the Docker world only; this is the local world")
	}
	p := startCompose(t, w.docker)
	a := newAPI(p.baseURL, p.token)

	tenant, partner := "acme", "acme-partner"
	a.mustPartner(t, partner)
	a.mustTenant(t, tenant, partner)
	a.mustRole(t, tenant, "bot-operators", "scaibunker:create", "scaibunker:execute")
	zt := a.mustMember(t, tenant, "bot-operators", "alice")
	allowed := checkRequest{TenantID: tenant, UserID: "alice", Permission: "scaibunker:create", ConsistencyToken: zt}
	denied := checkRequest{TenantID: tenant, UserID: "mallory", Permission: "scaibunker:create", ConsistencyToken: zt}
	before := []string{a.mustCheck(t, allowed, true).DecisionID, a.mustCheck(t, denied, false).DecisionID}
	mustAuditHas(t, a, tenant, before)

	start := time.Now()
	p.mustRun(2*time.Minute, "restart", "-t", "10", "authzd")
	p.mustWaitHealthy(2 * time.Minute)
	t.Logf("compose: authzd restarted and healthy in %s", time.Since(start).Round(time.Millisecond))

	// The relationships live in SpiceDB's datastore and the audit rows in Postgres: both survive.
	after := a.mustCheck(t, allowed, true).DecisionID
	a.mustCheck(t, denied, false)
	mustAuditHas(t, a, tenant, append(before, after))
	if got := a.mustPermissions(t, tenant, "alice", zt); len(got) != 2 {
		t.Errorf("alice's permissions after the restart = %v, want the role's two keys", got)
	}
}

// mustAuditHas reads the tenant's audit through the API and wants a row for each decision id.
func mustAuditHas(tb testing.TB, a *api, tenant string, decisionIDs []string) {
	tb.Helper()
	seen := map[string]bool{}
	for _, e := range walkAudit(tb, a, url.Values{"tenant_id": {tenant}}, 0) {
		seen[e.DecisionID] = true
	}
	for _, id := range decisionIDs {
		if !seen[id] {
			tb.Errorf("decision %s has no audit row", id)
		}
	}
}
