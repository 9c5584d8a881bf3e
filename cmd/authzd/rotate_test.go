package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scailabs/authzd/cmd/authzd/app"
	"github.com/scailabs/authzd/cmd/authzd/app/apptest"
	"github.com/scailabs/authzd/internal/auditchain"
	"github.com/scailabs/authzd/internal/pgtest"
)

// TestRotateKey: two replicas checkpoint with the old key while
// `authzd audit rotate-key` runs. There is one rotation record; rotating the
// retired key again is refused; the replicas stop signing and say so; a
// replica cannot start with the retired key; verify passes with both keys,
// with the old key only (learning the new one from the record) and with the
// new key only (older checkpoints not trusted), and a checkpoint forged with
// the old key after the rotation is a signature break.
func TestRotateKey(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	url := pgtest.MustCreate(t)
	t.Setenv("AUTHZ_DATABASE_URL", url)
	keygen := func(name string) (key, pub string) {
		var out bytes.Buffer
		key, pub = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".pub")
		if err := run(ctx, []string{"audit", "keygen", "--out", key}, &out, &out); err != nil {
			t.Fatal(err)
		}
		if err := writeFile(pub, out.String()); err != nil {
			t.Fatal(err)
		}
		return key, pub
	}
	oldKey, oldPub := keygen("old")
	newKey, newPub := keygen("new")

	var replicas []apptest.Authzd
	for range 2 {
		a, _ := apptest.MustStartWith(t, "memory", func(c *app.Config) {
			c.DatabaseURL, c.AuditSigningKey, c.AuditCheckpointInterval = url, oldKey, time.Second
		})
		replicas = append(replicas, a)
	}
	ctxLoad, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, a := range replicas {
		wg.Go(func() {
			for ctxLoad.Err() == nil {
				mustCheckOnce(t, a)
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	time.Sleep(1500 * time.Millisecond) // checkpoints of the old key

	t.Setenv("AUTHZ_AUDIT_SIGNING_KEY", oldKey)
	var out bytes.Buffer
	if err := run(ctx, []string{"audit", "rotate-key", "--new-key", newKey}, &out, &out); err != nil {
		t.Fatalf("rotate-key: %v\n%s", err, out.String())
	}
	if err := run(ctx, []string{"audit", "rotate-key", "--new-key", newKey}, &out, &out); err == nil || !strings.Contains(err.Error(), "retired") {
		t.Fatalf("rotating the retired key again: %v; want it refused", err)
	}
	time.Sleep(2500 * time.Millisecond) // every replica tries to checkpoint again
	stopLoad()
	wg.Wait()
	for i, a := range replicas {
		m := get(t, a, "/metrics")
		if !strings.Contains(m, "authzd_audit_signing_key_retired 1") {
			t.Errorf("replica %d does not report its key retired", i)
		}
		// Its last checkpoint came before the rotation, 2.5 s ago or more.
		if age := metricValue(t, m, "authzd_audit_checkpoint_age_seconds"); age < 2 {
			t.Errorf("replica %d: checkpoint age %v s; want it growing since the rotation", i, age)
		}
	}

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var rotations int
	var rotSeq, oldAfter int64
	if err := conn.QueryRow(ctx, "SELECT count(*), max(seq) FROM audit_key_rotations").Scan(&rotations, &rotSeq); err != nil || rotations != 1 {
		t.Fatalf("rotation records: %d (%v); want 1", rotations, err)
	}
	oldID, newID := keyID(t, oldPub), keyID(t, newPub)
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM audit_checkpoints WHERE key_id = $1 AND seq > $2", oldID, rotSeq).Scan(&oldAfter); err != nil || oldAfter != 0 {
		t.Fatalf("%d checkpoints of the old key after the rotation (%v)", oldAfter, err)
	}

	cfg := app.DefaultConfig()
	cfg.HTTPAddr, cfg.DatabaseURL, cfg.SpiceDBDatastore, cfg.AuditSigningKey = "127.0.0.1:0", url, "memory", oldKey
	if err := app.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))).Open(ctx); err == nil || !strings.Contains(err.Error(), "retired") {
		t.Fatalf("start with the retired key: %v; want it refused", err)
	}
	// A replica on the new key signs from the rotation on.
	apptest.MustStartWith(t, "memory", func(c *app.Config) { c.DatabaseURL, c.AuditSigningKey = url, newKey })

	verify := func(args ...string) (string, error) {
		var stdout, stderr bytes.Buffer
		err := run(ctx, append([]string{"audit", "verify"}, args...), &stdout, &stderr)
		return stdout.String(), err
	}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"BothKeys", []string{"--public-key", oldPub, "--public-key", newPub}, " 0 signed by keys not trusted"},
		{"OldKeyOnly", []string{"--public-key", oldPub}, "keys learned from rotation records: " + newID},
		{"NewKeyOnly", []string{"--public-key", newPub}, "OK:"},
	} {
		got, err := verify(c.args...)
		if err != nil || !strings.Contains(got, "OK:") || !strings.Contains(got, c.want) {
			t.Errorf("%s: %v\n%s; want OK with %q", c.name, err, got, c.want)
		}
		if c.name == "NewKeyOnly" && strings.Contains(got, " 0 signed by keys not trusted") {
			t.Errorf("new key only: the old key's checkpoints were trusted:\n%s", got)
		}
	}

	a := replicas[0]
	if body := get(t, a, "/v1/audit/rotations"); !strings.Contains(body, `"old_key_id":"`+oldID+`"`) || !strings.Contains(body, `"new_key_id":"`+newID+`"`) {
		t.Errorf("GET /v1/audit/rotations: %s", body)
	}
	if status := getStatus(t, a, "/v1/audit/rotations?after_seq=x"); status != http.StatusBadRequest {
		t.Errorf("GET /v1/audit/rotations?after_seq=x: %d; want 400", status)
	}

	// A leaked old key signs the head after the rotation.
	signer, err := auditchain.LoadSigner(oldKey)
	if err != nil {
		t.Fatal(err)
	}
	var head auditchain.Head
	if err := conn.QueryRow(ctx, "SELECT seq, hash FROM audit_chain_head").Scan(&head.Seq, &head.Hash); err != nil || head.Seq <= rotSeq {
		t.Fatalf("head %d (%v); want rows after the rotation at %d", head.Seq, err, rotSeq)
	}
	forged := signer.Sign(head, time.Now())
	if _, err := conn.Exec(ctx, "INSERT INTO audit_checkpoints (seq, hash, signed_at, key_id, signature) VALUES ($1, $2, $3, $4, $5)",
		forged.Seq, forged.Hash, forged.SignedAt, forged.KeyID, forged.Signature); err != nil {
		t.Fatal(err)
	}
	got, err := verify("--public-key", oldPub)
	if !errors.Is(err, errBroken) || !strings.Contains(got, "BROKEN: signature") || !strings.Contains(got, "retired") {
		t.Errorf("old-key checkpoint after the rotation: %v\n%s; want a signature break", err, got)
	}
}

func keyID(t *testing.T, pubFile string) string {
	t.Helper()
	keys, err := auditchain.ReadTrusted([]string{pubFile})
	if err != nil || len(keys) != 1 {
		t.Fatal(err)
	}
	for id := range keys {
		return id
	}
	return ""
}

func mustCheckOnce(t *testing.T, a apptest.Authzd) {
	req, _ := http.NewRequest(http.MethodPost, a.URL+"/v1/permissions/check",
		strings.NewReader(`{"tenant_id":"t1","user_id":"alice","permission":"scaibunker:create"}`))
	req.Header.Set("Authorization", "Bearer "+a.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("check: %s", resp.Status)
	}
}

func getStatus(t *testing.T, a apptest.Authzd, path string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, a.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+a.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func get(t *testing.T, a apptest.Authzd, path string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, a.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+a.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// metricValue reads an unlabelled sample from a Prometheus text exposition.
func metricValue(t *testing.T, exposition, name string) float64 {
	t.Helper()
	for _, line := range strings.Split(exposition, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no %s in the metrics", name)
	return 0
}
