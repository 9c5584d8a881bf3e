package app_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/net/html"

	"github.com/scailabs/authzd/cmd/authzd/app"
	"github.com/scailabs/authzd/cmd/authzd/app/apptest"
	"github.com/scailabs/authzd/internal/console"
)

// browser is a console user: a cookie jar that does not follow redirects,
// keeping every answer it saw so that a test can look for leaks.
type browser struct {
	t      *testing.T
	base   string
	client *http.Client
	seen   []string // every URL, header and body
}

type page struct {
	status int
	header http.Header
	body   string
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, client: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(method, path string, form url.Values, headers ...string) page {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	p := page{status: resp.StatusCode, header: resp.Header, body: string(raw)}
	var hs strings.Builder
	for k, v := range resp.Header {
		hs.WriteString(k + ": " + strings.Join(v, ",") + "\n")
	}
	b.seen = append(b.seen, method+" "+path, hs.String())
	if resp.Header.Get("Content-Disposition") == "" { // a download is the one place a new secret goes
		b.seen = append(b.seen, p.body)
	}
	return p
}

func (b *browser) get(path string) page { b.t.Helper(); return b.do("GET", path, nil) }

// csrf is the csrf_token of the first form of a page.
func csrf(t *testing.T, body string) string {
	t.Helper()
	m := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no csrf_token in %.500s", body)
	}
	return m[1]
}

func (b *browser) signIn(token, actor string) page {
	b.t.Helper()
	form := b.get("/console")
	return b.do("POST", "/console/sign-in", url.Values{"token": {token}, "actor_user_id": {actor}, "csrf_token": {csrf(b.t, form.body)}})
}

// post sends a form of the page at from, with its csrf_token.
func (b *browser) post(from, path string, form url.Values) page {
	b.t.Helper()
	form.Set("csrf_token", csrf(b.t, b.get(from).body))
	return b.do("POST", path, form)
}

func countRows(t *testing.T, dbURL, q string, args ...any) int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func checkHeaders(t *testing.T, what string, p page) {
	t.Helper()
	want := map[string]string{"Content-Security-Policy": console.CSP, "X-Frame-Options": "DENY",
		"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
	for k, v := range want {
		if got := p.header.Get(k); got != v {
			t.Errorf("%s: %s = %q, want %q", what, k, got, v)
		}
	}
}

// unlabelled lists the form controls of a page without a <label for>.
func unlabelled(t *testing.T, body string) []string {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]bool{}
	var controls []map[string]string
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			attrs := map[string]string{"tag": n.Data}
			for _, a := range n.Attr {
				attrs[a.Key] = a.Val
			}
			switch n.Data {
			case "label":
				labels[attrs["for"]] = true
			case "input", "select", "textarea":
				if attrs["type"] != "hidden" {
					controls = append(controls, attrs)
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	var out []string
	for _, c := range controls {
		if c["id"] == "" || !labels[c["id"]] {
			out = append(out, c["tag"]+" "+c["name"])
		}
	}
	return out
}

// TestConsole: headers, sign-in, CSRF, escaping, labels and leaks of the
// console over HTTP, against a real authzd.
func TestConsole(t *testing.T) {
	h := mustStart(t, "memory")
	zt := h.scopeFixture()
	hostile := `<script>alert(1)</script>`
	h.admin("PUT", "/v1/tenants/t1/roles/evil", `{"name":"`+strings.ReplaceAll(hostile, `"`, `\"`)+`","module_permissions":["scaibunker:create"]}`, 200)
	h.check(checkBody("t1", "alice", "scaibunker:create", zt))
	acme, _ := h.mintToken("acme-admin", allScopes, []string{"t1"})

	t.Run("wrong token", func(t *testing.T) {
		b := newBrowser(t, h.url)
		before := countRows(t, h.dbURL, "SELECT count(*) FROM console_sessions")
		wrong := "azd_0123456789abcdef_notthesecretatall"
		p := b.signIn(wrong, "")
		if p.status != 401 {
			t.Errorf("status %d, want 401", p.status)
		}
		if strings.Contains(p.body, wrong) {
			t.Error("the rejected token is echoed in the page")
		}
		if n := countRows(t, h.dbURL, "SELECT count(*) FROM console_sessions"); n != before {
			t.Errorf("a rejected sign-in stored %d sessions", n-before)
		}
	})

	t.Run("sign-in csrf", func(t *testing.T) {
		b := newBrowser(t, h.url)
		b.get("/console")
		p := b.do("POST", "/console/sign-in", url.Values{"token": {acme}, "csrf_token": {"forged"}})
		if p.status != 403 || len(b.client.Jar.Cookies(mustURL(t, h.url+"/console"))) > 1 {
			t.Errorf("a forged sign-in csrf_token: status %d, cookies %v", p.status, b.client.Jar.Cookies(mustURL(t, h.url+"/console")))
		}
	})

	b := newBrowser(t, h.url)
	p := b.signIn(acme, "alice")
	if p.status != 303 {
		t.Fatalf("sign-in: status %d: %s", p.status, p.body)
	}
	checkHeaders(t, "POST /console/sign-in", p)
	t.Run("cookie flags without TLS", func(t *testing.T) {
		ck := p.header.Get("Set-Cookie")
		for _, sc := range p.header.Values("Set-Cookie") {
			if strings.HasPrefix(sc, console.CookieName+"=") {
				ck = sc
			}
		}
		if !strings.Contains(ck, "HttpOnly") || !strings.Contains(ck, "SameSite=Strict") || strings.Contains(ck, "Secure") {
			t.Errorf("Set-Cookie %q: want HttpOnly, SameSite=Strict, not Secure on plain HTTP", ck)
		}
	})

	pages := []string{"/console", "/console/tenants/t1", "/console/tenants/t1/roles/evil", "/console/tenants/t1/roles/tenant_admin",
		"/console/audit", "/console/audit?tenant_id=t1&decision=allowed", "/console/explain", "/console/tokens"}
	t.Run("pages", func(t *testing.T) {
		for _, path := range pages {
			p := b.get(path)
			if p.status != 200 {
				t.Errorf("%s: status %d: %s", path, p.status, regexp.MustCompile(`(?s)<main.*</main>`).FindString(p.body))
				continue
			}
			checkHeaders(t, path, p)
			if strings.Contains(p.body, hostile) {
				t.Errorf("%s: the hostile role name is not escaped", path)
			}
			if bad := unlabelled(t, p.body); len(bad) > 0 {
				t.Errorf("%s: controls without a label: %v", path, bad)
			}
			if strings.Contains(p.body, "t3") && path != "/console/audit" {
				t.Errorf("%s: an acme token sees t3", path)
			}
		}
		for _, path := range []string{"/console/tenants/t1", "/console/tenants/t1/roles/evil", "/console/audit?tenant_id=t1&module=authzd"} {
			if m := b.get(path); !strings.Contains(m.body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
				t.Errorf("%s does not show the hostile role name escaped", path)
			}
		}
		if p := b.get("/console/tenants/t3"); p.status != 403 || !strings.Contains(p.body, "reaches [&#34;t1&#34;], not &#34;t3&#34;") {
			t.Errorf("matrix of t3: status %d: %.300s", p.status, p.body)
		}
		for _, path := range []string{"/console/nope", "/console/assets/console.css", "/console/assets/console.js", "/console/assets/nope.css"} {
			checkHeaders(t, path, b.get(path))
		}
	})

	t.Run("role edit", func(t *testing.T) {
		role := "/console/tenants/t1/roles/ops"
		p := b.post(role, role, url.Values{"action": {"save"}, "name": {"Ops"}, "key": {"scaibunker:create", "scaiskills:grant"}})
		if p.status != 303 {
			t.Fatalf("save: status %d: %.300s", p.status, p.body)
		}
		checkHeaders(t, "POST "+role, p)
		got := h.admin("GET", "/v1/tenants/t1/roles/ops", "", 200).raw
		if !strings.Contains(got, `["scaibunker:create","scaiskills:grant"]`) {
			t.Errorf("role after save: %s", got)
		}
		n := countRows(t, h.dbURL, `SELECT count(*) FROM audit_events WHERE action = 'role.put' AND details->>'via' = 'console' AND actor_user_id = 'alice' AND tenant_id = 't1'`)
		if n != 1 {
			t.Errorf("%d role.put rows with via console and actor alice, want 1", n)
		}
		p = b.post(role, role, url.Values{"action": {"save"}, "name": {"Ops"}, "key": {"nope:key"}})
		if p.status != 400 || !strings.Contains(p.body, "unknown permission key") {
			t.Errorf("bad key: status %d: %.300s", p.status, p.body)
		}
		if got2 := h.admin("GET", "/v1/tenants/t1/roles/ops", "", 200).raw; got2 != got {
			t.Errorf("a refused save changed the role: %s", got2)
		}
	})

	t.Run("csrf", func(t *testing.T) {
		role := "/console/tenants/t1/roles/ops"
		before := h.admin("GET", "/v1/tenants/t1/roles/ops", "", 200).raw
		rows := h.auditCount()
		for name, form := range map[string]url.Values{
			"missing": {"action": {"save"}, "name": {"X"}},
			"wrong":   {"action": {"save"}, "name": {"X"}, "csrf_token": {"AAAA"}},
		} {
			p := b.do("POST", role, form)
			if p.status != 403 {
				t.Errorf("%s csrf_token: status %d", name, p.status)
			}
			checkHeaders(t, name+" csrf_token", p)
		}
		form := url.Values{"action": {"save"}, "name": {"X"}, "csrf_token": {csrf(t, b.get(role).body)}}
		if p := b.do("POST", role, form, "Sec-Fetch-Site", "cross-site"); p.status != 403 {
			t.Errorf("cross-site: status %d", p.status)
		}
		if after := h.admin("GET", "/v1/tenants/t1/roles/ops", "", 200).raw; after != before || h.auditCount() != rows {
			t.Error("a refused form changed the role or the trail")
		}
	})

	t.Run("token download and no leaks", func(t *testing.T) {
		p := b.post("/console/tokens", "/console/tokens", url.Values{"name": {"ci"}, "scope": {"check"}, "tenants": {"t1"}})
		secret := strings.TrimSpace(p.body)
		if p.status != 200 || !strings.HasPrefix(p.header.Get("Content-Disposition"), "attachment") || !strings.HasPrefix(secret, "azd_") {
			t.Fatalf("create: status %d, %q: %.100s", p.status, p.header.Get("Content-Disposition"), p.body)
		}
		if r := h.do("GET", "/v1/tenants", secret, ""); r.status != 200 {
			t.Errorf("the downloaded token does not work: %d", r.status)
		}
		if p := b.post("/console/tokens", "/console/tokens", url.Values{"name": {"wide"}, "scope": {"check"}}); p.status != 403 {
			t.Errorf("minting a token for every tenant from an acme session: status %d", p.status)
		}
		for _, path := range pages {
			b.get(path)
		}
		for _, s := range b.seen {
			if strings.Contains(s, acme) || strings.Contains(s, secret) {
				t.Errorf("a secret appears in %.200s", s)
			}
		}
	})

	t.Run("revocation ends the session", func(t *testing.T) {
		_, id := h.mintToken("short", allScopes, []string{"t1"})
		_ = id
		s2 := newBrowser(t, h.url)
		sec, id2 := h.mintToken("short2", allScopes, []string{"t1"})
		if p := s2.signIn(sec, ""); p.status != 303 {
			t.Fatalf("sign-in: %d", p.status)
		}
		h.admin("DELETE", "/v1/tokens/"+id2, "", 200)
		if p := s2.get("/console/tenants/t1"); p.status != 303 || p.header.Get("Location") != "/console" {
			t.Errorf("after revocation: status %d, Location %q", p.status, p.header.Get("Location"))
		}
	})
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestConsoleSecureCookie: with an https AUTHZ_PUBLIC_URL the session cookie is Secure.
func TestConsoleSecureCookie(t *testing.T) {
	a, _ := apptest.MustStartWith(t, "memory", func(c *app.Config) { c.PublicURL = "https://authzd.example" })
	b := newBrowser(t, a.URL)
	p := b.signIn(a.AdminToken, "")
	found := false
	for _, sc := range p.header.Values("Set-Cookie") {
		if strings.HasPrefix(sc, console.CookieName+"=") {
			found = strings.Contains(sc, "Secure") && strings.Contains(sc, "HttpOnly") && strings.Contains(sc, "SameSite=Strict")
		}
	}
	if p.status != 303 || !found {
		t.Errorf("status %d, Set-Cookie %v: want a Secure, HttpOnly, SameSite=Strict session cookie", p.status, p.header.Values("Set-Cookie"))
	}
	_ = time.Second
}
