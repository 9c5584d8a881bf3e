// Package spicedb is authzd's adapter to SpiceDB: it runs SpiceDB in-process or
// dials an external cluster, keeps its schema current, and turns authzd's
// checks and provisioning writes into SpiceDB calls.
package spicedb

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/authzed/grpcutil"
	"github.com/cenkalti/backoff/v5"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/scailabs/authzd/internal/authz"
)

// What a zero Config field means. authzd's configuration (cmd/authzd/app)
// has the same defaults, which a test there keeps equal to these.
const (
	DefaultTimeout      = 5 * time.Second
	DefaultWriteTimeout = 15 * time.Second
	DefaultStartTimeout = 30 * time.Second
	DefaultCheckSlots   = 4
)

// Config selects and configures the SpiceDB that authzd talks to.
type Config struct {
	// Endpoint of an external SpiceDB (host:port). Empty runs SpiceDB embedded.
	Endpoint string
	// Token is the external SpiceDB's preshared key.
	Token string
	// Insecure dials the external SpiceDB without TLS.
	Insecure bool
	// TLS, when set, makes the TLS configuration of each connection to the
	// external SpiceDB (its CA instead of the system's roots).
	TLS func(serverName string) *tls.Config
	// Embedded configures the in-process SpiceDB when Endpoint is empty.
	Embedded EmbeddedConfig
	// Timeout bounds each SpiceDB read and check.
	Timeout time.Duration
	// WriteTimeout bounds a relationship write including authzd's retries of it
	// (default 15s). Concurrent writes to the Postgres datastore conflict under
	// SERIALIZABLE isolation; SpiceDB and then authzd retry them.
	WriteTimeout time.Duration
	// Schema is the schema text authzd writes when SpiceDB's differs.
	Schema string
	// StartTimeout bounds how long Open waits for an unavailable SpiceDB (default 30s).
	StartTimeout time.Duration
	// CheckSlots bounds the single checks in flight to SpiceDB; checks that
	// arrive while every slot is busy are coalesced into one
	// CheckBulkPermissions call (see coalescer). 0 means 4; a negative value
	// turns coalescing off (one unbounded call per check).
	CheckSlots int
	// MemoWindow turns on the revision memo (see memo) and bounds how long it
	// trusts the last revision SpiceDB answered at; 0 turns it off.
	MemoWindow time.Duration
	// MemoEntries bounds the answers the memo holds per revision (default 131072).
	MemoEntries int
	// Observe, when set, is told the duration and outcome of every SpiceDB call.
	Observe func(method string, d time.Duration, err error)
	// ObserveCheckBatch, when set, is told the size of every coalesced check call.
	ObserveCheckBatch func(items int)
}

// Graph is the SpiceDB adapter.
type Graph struct {
	conn     *grpc.ClientConn
	embedded *embedded
	perms    v1.PermissionsServiceClient
	schema   v1.SchemaServiceClient
	timeout  time.Duration
	wtimeout time.Duration
	// writeMu serialises writes on the embedded memory datastore, whose
	// revisions can otherwise commit out of order under concurrent writers and
	// break read-your-writes with zed tokens. Nil for every other datastore.
	writeMu *sync.Mutex
	model   *model
	logger  *slog.Logger
	checks  *coalescer // nil when coalescing is off
	memo    *memo      // nil when off

	watch v1.WatchServiceClient
	// wrote is told of each write SpiceDB took (NotifyWrites).
	wrote atomic.Pointer[func(id, token string)]
}

// Open connects to SpiceDB (starting it in-process when no endpoint is
// configured) and writes the schema when SpiceDB's differs. It closes what it
// opened when a step fails.
func Open(ctx context.Context, cfg Config, logger *slog.Logger) (_ *Graph, err error) {
	m, err := parseModel(cfg.Schema)
	if err != nil {
		return nil, err
	}
	g := &Graph{timeout: cfg.Timeout, model: m, logger: logger}
	if g.timeout <= 0 {
		g.timeout = DefaultTimeout
	}
	g.wtimeout = cfg.WriteTimeout
	if g.wtimeout <= 0 {
		g.wtimeout = DefaultWriteTimeout
	}
	if cfg.Endpoint == "" && (cfg.Embedded.Datastore == "" || cfg.Embedded.Datastore == "memory") {
		g.writeMu = &sync.Mutex{}
	}
	defer func() {
		if err != nil {
			_ = g.Close()
		}
	}()

	if err := g.connect(ctx, &cfg); err != nil {
		return nil, err
	}
	g.perms = v1.NewPermissionsServiceClient(g.conn)
	g.schema = v1.NewSchemaServiceClient(g.conn)
	g.watch = v1.NewWatchServiceClient(g.conn)
	g.startHelpers(cfg)
	if err := g.waitForSchema(ctx, cfg, logger); err != nil {
		return nil, err
	}
	return g, nil
}

// connect starts the embedded SpiceDB, or dials the external one.
func (g *Graph) connect(ctx context.Context, cfg *Config) error {
	interceptors := []grpc.DialOption{}
	if cfg.Observe != nil {
		interceptors = append(interceptors, grpc.WithChainUnaryInterceptor(observer(cfg.Observe)))
	}
	if cfg.Endpoint == "" {
		if cfg.Embedded.PresharedKey == "" {
			cfg.Embedded.PresharedKey = randomKey()
		}
		e, err := startEmbedded(ctx, cfg.Embedded, interceptors...)
		if err != nil {
			return err
		}
		g.embedded, g.conn = e, e.conn
		return nil
	}
	// Reconnect within about two seconds once SpiceDB is back: gRPC's default
	// backoff grows to two minutes, so after an outage of tens of seconds the
	// next attempt could come long after SpiceDB answers again.
	opts := append([]grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
		Backoff:           grpcbackoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
		MinConnectTimeout: 5 * time.Second,
	})}, interceptors...)
	if cfg.Insecure {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()), grpcutil.WithInsecureBearerToken(cfg.Token))
	} else if cfg.TLS != nil {
		opts = append(opts, grpc.WithTransportCredentials(reloadingTLS{cfg.TLS}), grpcutil.WithBearerToken(cfg.Token))
	} else {
		certs, err := grpcutil.WithSystemCerts(grpcutil.VerifyCA)
		if err != nil {
			return fmt.Errorf("load system certificates: %w", err)
		}
		opts = append(opts, certs, grpcutil.WithBearerToken(cfg.Token))
	}
	conn, err := grpc.NewClient(cfg.Endpoint, opts...)
	if err != nil {
		return fmt.Errorf("dial spicedb %s: %w", cfg.Endpoint, err)
	}
	g.conn = conn
	return nil
}

// startHelpers starts the check coalescer and the revision memo, as configured.
func (g *Graph) startHelpers(cfg Config) {
	if cfg.CheckSlots == 0 {
		cfg.CheckSlots = DefaultCheckSlots
	}
	if cfg.CheckSlots > 0 {
		g.checks = newCoalescer(g, cfg.CheckSlots, cfg.ObserveCheckBatch)
	}
	if cfg.MemoWindow > 0 {
		if cfg.MemoEntries <= 0 {
			cfg.MemoEntries = 1 << 17
		}
		g.memo = newMemo(cfg.MemoWindow, cfg.MemoEntries)
	}
}

// waitForSchema writes the schema when SpiceDB's differs. An external SpiceDB
// may still be starting (compose, Kubernetes): wait for it within
// StartTimeout, but fail at once on anything but unavailability.
func (g *Graph) waitForSchema(ctx context.Context, cfg Config, logger *slog.Logger) error {
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = DefaultStartTimeout
	}
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		err := g.syncSchema(ctx, cfg.Schema)
		if err != nil && authz.ErrorCode(err) != authz.EUNAVAILABLE {
			return struct{}{}, backoff.Permanent(err)
		}
		return struct{}{}, err
	}, backoff.WithMaxElapsedTime(cfg.StartTimeout), backoff.WithNotify(func(err error, d time.Duration) {
		logger.Warn("waiting for spicedb", "err", err, "retry_in", d.String())
	}))
	return err
}

// closeWait bounds Close, which has no caller's bound.
const closeWait = 10 * time.Second

// Close is Shutdown within closeWait.
func (g *Graph) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), closeWait)
	defer cancel()
	return g.Shutdown(ctx)
}

// Shutdown stops the check slots (each answers its callers), then releases the connection and stops an embedded
// SpiceDB, all within ctx. When ctx ends first, the connection is closed
// under whatever is still in flight, so those calls fail (closed, never a yes).
func (g *Graph) Shutdown(ctx context.Context) error {
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		if g.checks != nil {
			g.checks.close()
		}
	}()
	var errs []error
	select {
	case <-stopped:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("checks in flight did not finish within the shutdown bound: %w", ctx.Err()))
	}
	if g.embedded != nil {
		if err := g.embedded.close(ctx); err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				// Say what SpiceDB's graceful stop was waiting for (CI saw it once, unexplained).
				var dump bytes.Buffer
				_ = pprof.Lookup("goroutine").WriteTo(&dump, 1)
				g.logger.Error("embedded spicedb did not stop within the shutdown bound", "goroutines", dump.String())
			}
		}
	} else if g.conn != nil {
		errs = append(errs, g.conn.Close())
	}
	return errors.Join(errs...)
}

// Ready reports whether SpiceDB answers.
func (g *Graph) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	_, err := g.schema.ReadSchema(ctx, &v1.ReadSchemaRequest{})
	return mapError(err, "read schema")
}

// MemoStats reports the revision memo's hits and misses (zeros when it is off).
func (g *Graph) MemoStats() (hits, misses uint64) {
	if g.memo == nil {
		return 0, 0
	}
	return g.memo.stats()
}

// ResourceTypes lists the resource types the schema knows.
func (g *Graph) ResourceTypes() []string { return g.model.resourceTypeNames() }

func observer(fn func(string, time.Duration, error)) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		start := time.Now()
		err := invoker(ctx, method, req, reply, cc, opts...)
		fn(method, time.Since(start), err)
		return err
	}
}

func randomKey() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b)
}

// call bounds a SpiceDB call by the configured timeout.
func (g *Graph) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, g.timeout)
}
