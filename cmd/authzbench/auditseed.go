package main

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scailabs/authzd/internal/authz"
	"github.com/scailabs/authzd/internal/postgres"
)

// auditSeed describes the synthetic audit history: rows spread over a window
// of days in time order, as an append-only log grows, across the model's
// modules and authzd's own rows, over tenants of uneven activity and the
// users of each.
type auditSeed struct {
	rows    int
	from    time.Time
	window  time.Duration
	tenants int
	modules []seedModule
}

type seedModule struct {
	name   string
	weight int // relative share of rows
	keys   []authz.Key
}

var provisioningActions = []string{"tenant.put", "role.put", "member.add", "member.remove", "resource.put"}

func newAuditSeed(rows, tenants int, keys []authz.Key, now time.Time) auditSeed {
	s := auditSeed{rows: rows, tenants: tenants, window: 90 * 24 * time.Hour}
	s.from = now.Add(-s.window).Truncate(24 * time.Hour)
	byModule := map[string][]authz.Key{}
	var order []string
	for _, k := range keys {
		if _, ok := byModule[k.Module()]; !ok {
			order = append(order, k.Module())
		}
		byModule[k.Module()] = append(byModule[k.Module()], k)
	}
	// The first module gets the most traffic, each further one half as much; authzd's own rows are 10%.
	w := 60
	for _, m := range order {
		s.modules = append(s.modules, seedModule{name: m, weight: w, keys: byModule[m]})
		w = max(5, w/2)
	}
	s.modules = append(s.modules, seedModule{name: authz.AuditModule, weight: 10})
	return s
}

// tenant draws a tenant with a skew: low-numbered tenants are far busier.
func (s auditSeed) tenant(rng *rand.Rand) string {
	u := rng.Float64()
	return fmt.Sprintf("seed-t%05d", int(u*u*float64(s.tenants)))
}

func (s auditSeed) module(rng *rand.Rand) seedModule {
	total := 0
	for _, m := range s.modules {
		total += m.weight
	}
	n := rng.IntN(total)
	for _, m := range s.modules {
		if n < m.weight {
			return m
		}
		n -= m.weight
	}
	return s.modules[0]
}

var seedColumns = []string{"seq", "hash", "occurred_at", "module", "action", "actor_user_id", "tenant_id", "resource_type",
	"resource_id", "permission", "decision", "zed_token", "decision_id", "client", "request_id", "details"}

// seedSeqBase keeps seeded sequence numbers far from the chain the benchmark's authzd writes.
const seedSeqBase = 1 << 40

// seedAudit COPYs s.rows rows into audit_events in chunks, two at a time
// (one per core), each chunk covering its own slice of the window in time order.
func seedAudit(ctx context.Context, pool *pgxpool.Pool, s auditSeed) error {
	// The window's monthly partitions, as authzd would have created them while the rows arrived.
	if err := (&postgres.DB{Pool: pool}).EnsurePartitions(ctx, s.from, s.from.Add(s.window)); err != nil {
		return err
	}
	const chunk = 250_000
	chunks := (s.rows + chunk - 1) / chunk
	next := make(chan int)
	errs := make(chan error, chunks)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range next {
				lo, hi := c*chunk, min(s.rows, (c+1)*chunk)
				_, err := pool.CopyFrom(ctx, pgx.Identifier{"audit_events"}, seedColumns, s.source(c, lo, hi))
				errs <- err
			}
		}()
	}
	for c := range chunks {
		next <- c
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return fmt.Errorf("seed audit_events: %w", err)
		}
	}
	return nil
}

// source generates rows lo..hi-1.
func (s auditSeed) source(c, lo, hi int) pgx.CopyFromSource {
	rng := rand.New(rand.NewPCG(uint64(c), 42))
	step := s.window / time.Duration(s.rows)
	i := lo
	row := make([]any, len(seedColumns))
	var decision [16]byte
	return pgx.CopyFromFunc(func() ([]any, error) {
		if i >= hi {
			return nil, nil
		}
		at := s.from.Add(time.Duration(i)*step + time.Duration(rng.Int64N(int64(step)+1)))
		i++
		m := s.module(rng)
		tenant := s.tenant(rng)
		actor := fmt.Sprintf("%s-u%02d", tenant, rng.IntN(30))
		action, perm, resType, resID := "", "", "", ""
		var details []byte
		if len(m.keys) > 0 {
			k := m.keys[rng.IntN(len(m.keys))]
			action, perm = k.String(), k.String()
			if rng.IntN(4) == 0 {
				resType, resID = "bunker", fmt.Sprintf("b%04d", rng.IntN(5000))
			}
		} else {
			action = provisioningActions[rng.IntN(len(provisioningActions))]
			details = []byte(fmt.Sprintf(`{"user_id":%q}`, actor))
		}
		verdict := authz.DecisionAllowed
		if rng.IntN(3) == 0 {
			verdict = authz.DecisionDenied
		}
		uuidV7(&decision, at, rng)
		// seq and hash give the rows their real width; they are not a valid chain (nothing verifies it here).
		hash := make([]byte, 32)
		binary.LittleEndian.PutUint64(hash, rng.Uint64())
		row[0], row[1] = int64(seedSeqBase+i), hash
		row[2], row[3], row[4], row[5], row[6] = at, m.name, action, actor, tenant
		row[7], row[8], row[9], row[10] = resType, resID, perm, verdict
		row[11] = fmt.Sprintf("GhUKEzE3%016x", at.Unix()/5)
		row[12] = decision
		row[13] = "token:" + m.name + "-prod"
		row[14] = randHex(rng, 16)
		row[15] = details
		return row, nil
	})
}

// uuidV7 fills u with a version-7 UUID for time at, like the facade's decision ids.
func uuidV7(u *[16]byte, at time.Time, rng *rand.Rand) {
	ms := uint64(at.UnixMilli())
	binary.BigEndian.PutUint64(u[8:], rng.Uint64())
	binary.BigEndian.PutUint64(u[0:], ms<<16|rng.Uint64()&0xffff)
	u[6] = 0x70 | u[6]&0x0f
	u[8] = 0x80 | u[8]&0x3f
}

func randHex(rng *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], rng.Uint64())
		copy(b[i:], w[:])
	}
	return hex.EncodeToString(b)
}
