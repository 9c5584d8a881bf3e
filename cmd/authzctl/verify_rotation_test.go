package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scailabs/authzd/cmd/authzd/app"
	"github.com/scailabs/authzd/cmd/authzd/app/apptest"
	"github.com/scailabs/authzd/internal/auditchain"
)

// TestAuditVerifyRotation: over HTTP, a verifier holding only the old key
// follows the rotation record (GET /v1/audit/rotations) and verifies the
// new key's checkpoints, naming the key it learned.
func TestAuditVerifyRotation(t *testing.T) {
	dir := t.TempDir()
	keyFile := func(name string) (path, pubPath, id string) {
		pub, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pemKey, err := auditchain.MarshalPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		path, pubPath = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".pub")
		if err := os.WriteFile(path, pemKey, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(pubPath, auditchain.MarshalPublicKey(pub), 0o644); err != nil {
			t.Fatal(err)
		}
		return path, pubPath, auditchain.KeyID(pub)
	}
	oldKey, oldPub, _ := keyFile("old")
	newKey, _, newID := keyFile("new")

	a, _ := apptest.MustStartWith(t, "memory", func(c *app.Config) { c.AuditSigningKey = oldKey })
	env := map[string]string{"AUTHZ_URL": a.URL, "AUTHZ_TOKEN": a.AdminToken}
	MustOK(t, env, "partner", "put", "p1")
	time.Sleep(1500 * time.Millisecond) // a checkpoint of the old key

	cfg := app.DefaultConfig()
	cfg.DatabaseURL, cfg.AuditSigningKey = a.DatabaseURL, oldKey
	if _, err := app.RotateAuditKey(context.Background(), cfg, newKey); err != nil {
		t.Fatal(err)
	}
	b, _ := apptest.MustStartWith(t, "memory", func(c *app.Config) { c.DatabaseURL, c.AuditSigningKey = a.DatabaseURL, newKey })
	envB := map[string]string{"AUTHZ_URL": b.URL, "AUTHZ_TOKEN": b.AdminToken}
	MustOK(t, envB, "partner", "put", "p2")
	time.Sleep(1500 * time.Millisecond) // a checkpoint of the new key

	out := MustOK(t, envB, "audit", "verify", "--public-key", oldPub)
	if !strings.Contains(out, "OK:") || !strings.Contains(out, "keys learned from rotation records: "+newID) {
		t.Fatalf("old key only, over HTTP: %s", out)
	}
}
