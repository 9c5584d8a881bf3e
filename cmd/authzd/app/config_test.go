package app

import (
	"crypto/ed25519"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/scailabs/authzd/internal/auditchain"
)

// TestConfigValidate: each setting authzd cannot honour is refused, naming the variable, instead of
// silently meaning a default.
func TestConfigValidate(t *testing.T) {
	base, err := env.ParseAsWithOptions[Config](env.Options{Environment: map[string]string{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := base.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, tc := range []struct {
		name, want string
		tune       func(*Config)
	}{
		{"ErrLogLevel", "AUTHZ_LOG_LEVEL", func(c *Config) { c.LogLevel = "garbage" }},
		{"ErrLogFormat", "AUTHZ_LOG_FORMAT", func(c *Config) { c.LogFormat = "xml" }},
		{"ErrDecisionCache", "AUTHZ_DECISION_CACHE", func(c *Config) { c.DecisionCache = "maybe" }},
		{"ErrVerifyRate", "AUTHZ_CACHE_VERIFY_RATE", func(c *Config) { c.CacheVerifyRate = 2 }},
		{"ErrCacheEntries", "AUTHZ_DECISION_CACHE_ENTRIES", func(c *Config) { c.DecisionCacheEntries = 0 }},
		{"ErrDatastore", "AUTHZ_SPICEDB_DATASTORE", func(c *Config) { c.SpiceDBDatastore = "mysql" }},
		{"ErrCheckpointInterval", "AUTHZ_AUDIT_CHECKPOINT_INTERVAL", func(c *Config) { c.AuditCheckpointInterval = 0 }},
		{"ErrLingerNegative", "AUTHZ_AUDIT_LINGER", func(c *Config) { c.AuditLinger = -time.Millisecond }},
		{"ErrLingerLong", "AUTHZ_AUDIT_LINGER", func(c *Config) { c.AuditLinger = 2 * time.Second }},
		{"ErrRetentionShort", "AUTHZ_AUDIT_RETENTION", func(c *Config) { c.AuditRetention = Retention(24 * time.Hour) }},
		{"ErrGCPercent", "AUTHZ_GC_PERCENT", func(c *Config) { c.GCPercent = 0 }},
		{"ErrDebugAddr", "AUTHZ_DEBUG_ADDR", func(c *Config) { c.DebugAddr = "6060" }},
		{"ErrDebugAddrIsAPI", "AUTHZ_DEBUG_ADDR", func(c *Config) { c.DebugAddr = c.HTTPAddr }},
		{"ErrClientCAWithoutPair", "AUTHZ_TLS_CLIENT_CA_FILE", func(c *Config) { c.TLSClientCAFile = "ca.pem" }},
		{"ErrProbeAddr", "AUTHZ_PROBE_ADDR", func(c *Config) { c.ProbeAddr = "8081" }},
		{"ErrProbeAddrIsAPI", "AUTHZ_PROBE_ADDR", func(c *Config) { c.ProbeAddr = c.HTTPAddr }},
		{"ErrSpiceDBCAEmbedded", "AUTHZ_SPICEDB_CA_FILE", func(c *Config) { c.SpiceDBCAFile = "ca.pem" }},
		{"ErrSpiceDBCAInsecure", "AUTHZ_SPICEDB_CA_FILE", func(c *Config) {
			c.SpiceDBEndpoint, c.SpiceDBToken, c.SpiceDBInsecure, c.SpiceDBCAFile = "spicedb:50051", "k", true, "ca.pem"
		}},
		{"ErrDrainDelay", "AUTHZ_SHUTDOWN_DRAIN_DELAY", func(c *Config) { c.ShutdownDrainDelay = -time.Second }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.tune(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want an error naming %s", err, tc.want)
			}
		})
	}
	for _, lvl := range []string{"debug", "info", "warn", "error"} {
		c := base
		c.LogLevel = lvl
		if err := c.Validate(); err != nil {
			t.Errorf("log level %q refused: %v", lvl, err)
		}
	}
}

// TestRetentionParse: days or a Go duration; anything else is refused naming the variable.
func TestRetentionParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"400d", 400 * 24 * time.Hour, false},
		{"0", 0, false},
		{"9600h", 400 * 24 * time.Hour, false},
		{"-3d", 0, true},
		{"a year", 0, true},
	} {
		cfg, err := env.ParseAsWithOptions[Config](env.Options{Environment: map[string]string{"AUTHZ_AUDIT_RETENTION": tc.in}})
		if tc.err {
			if err == nil || !strings.Contains(err.Error(), "AUTHZ_AUDIT_RETENTION") {
				t.Errorf("%q: err %v, want one naming AUTHZ_AUDIT_RETENTION", tc.in, err)
			}
			continue
		}
		if err != nil || time.Duration(cfg.AuditRetention) != tc.want {
			t.Errorf("%q: %v, %v; want %v", tc.in, time.Duration(cfg.AuditRetention), err, tc.want)
		}
	}
}

// TestAuditSigner: a key file is loaded (PEM PKCS #8), a bad path is refused
// naming the variable, and no path makes a key for the process.
func TestAuditSigner(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	_, key, _ := ed25519.GenerateKey(nil)
	pemKey, err := auditchain.MarshalPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, pemKey, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := auditSigner(Config{AuditSigningKey: path}, logger)
	if err != nil || s.KeyID() != auditchain.KeyID(key.Public().(ed25519.PublicKey)) {
		t.Errorf("load %s: %v", path, err)
	}
	if _, err := auditSigner(Config{AuditSigningKey: filepath.Join(t.TempDir(), "missing.pem")}, logger); err == nil || !strings.Contains(err.Error(), "AUTHZ_AUDIT_SIGNING_KEY") {
		t.Errorf("missing key file: %v, want an error naming AUTHZ_AUDIT_SIGNING_KEY", err)
	}
	if s, err := auditSigner(Config{}, logger); err != nil || len(s.KeyID()) != 16 {
		t.Errorf("no key configured: %v", err)
	}
}
