package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/scailabs/authzd/internal/authz"
)

// dataset is a provisioning shape: tenants spread over partners, each tenant
// with rolesPerTenant custom roles of keysPerRole keys and usersPerRole
// members. Every user belongs to exactly one custom role, so which checks are
// allowed is known in advance: a user holds exactly its role's keys.
// One super admin and one admin per partner give the arrows of the tenant
// permissions something to find.
type dataset struct {
	prefix                                    string
	tenants, partners                         int
	rolesPerTenant, keysPerRole, usersPerRole int
	keys                                      []authz.Key // every key of the model, in model order
}

func newDataset(prefix string, tenants, partners int, keys []authz.Key) *dataset {
	return &dataset{prefix: prefix, tenants: tenants, partners: max(1, min(partners, tenants)),
		rolesPerTenant: 3, keysPerRole: 5, usersPerRole: 10, keys: keys}
}

func (d *dataset) partner(p int) string { return fmt.Sprintf("%s-p%03d", d.prefix, p) }
func (d *dataset) tenant(t int) string  { return fmt.Sprintf("%s-t%05d", d.prefix, t) }
func (d *dataset) role(r int) string    { return fmt.Sprintf("role%d", r) }
func (d *dataset) user(t, r, m int) string {
	return fmt.Sprintf("%s-t%05d-u%02d", d.prefix, t, r*d.usersPerRole+m)
}
func (d *dataset) superAdmin() string { return d.prefix + "-root" }
func (d *dataset) partnerAdmin(p int) string {
	return fmt.Sprintf("%s-p%03d-admin", d.prefix, p)
}

// roleKeys are the indexes into keys of role r of tenant t. The roles of a
// tenant hold disjoint keys, and the window moves from tenant to tenant so
// every key is granted somewhere.
func (d *dataset) roleKeys(t, r int) []int {
	out := make([]int, d.keysPerRole)
	for j := range out {
		out[j] = (t*7 + r*d.keysPerRole + j) % len(d.keys)
	}
	return out
}

// writes is the number of provisioning calls: per partner its PUT and its
// admin, one super admin, per tenant its PUT, its roles and their members.
func (d *dataset) writes() int {
	return 1 + 2*d.partners + d.tenants*d.perTenantWrites()
}

func (d *dataset) perTenantWrites() int {
	return 1 + d.rolesPerTenant*(1+d.usersPerRole)
}

// relationships is what the writes store in SpiceDB.
func (d *dataset) relationships() int {
	perRole := 1 + d.keysPerRole + d.usersPerRole // role#tenant, grants, members
	return 1 + 2*d.partners + d.tenants*(2+d.rolesPerTenant*perRole)
}

// provisioner sends the data set's writes through the facade's API.
type provisioner struct {
	d   *dataset
	api *apiClient
}

// platform writes the super admin and the partners with their admins.
func (p provisioner) platform(ctx context.Context, conc int, cpu *cpuMeter) stats {
	return runJobs(ctx, conc, 1+p.d.partners, cpu, func(ctx context.Context, j int, rec func(time.Duration, outcome, error)) {
		if j == 0 {
			p.put(ctx, rec, "/v1/platform/super_admins/"+p.d.superAdmin(), "")
			return
		}
		pid := p.d.partner(j - 1)
		if p.put(ctx, rec, "/v1/partners/"+pid, "") {
			p.put(ctx, rec, "/v1/partners/"+pid+"/admins/"+p.d.partnerAdmin(j-1), "")
		}
	})
}

// tenants writes every tenant, one tenant per job: the tenant, then its roles, then their members.
func (p provisioner) tenants(ctx context.Context, conc int, cpu *cpuMeter) stats {
	d := p.d
	return runJobs(ctx, conc, d.tenants, cpu, func(ctx context.Context, t int, rec func(time.Duration, outcome, error)) {
		tid := d.tenant(t)
		if !p.put(ctx, rec, "/v1/tenants/"+tid, fmt.Sprintf(`{"partner_id":%q}`, d.partner(t%d.partners))) {
			return
		}
		for r := range d.rolesPerTenant {
			keys := make([]string, 0, d.keysPerRole)
			for _, k := range d.roleKeys(t, r) {
				keys = append(keys, fmt.Sprintf("%q", d.keys[k].String()))
			}
			body := fmt.Sprintf(`{"name":"bench role %d","module_permissions":[%s]}`, r, strings.Join(keys, ","))
			if !p.put(ctx, rec, "/v1/tenants/"+tid+"/roles/"+d.role(r), body) {
				continue
			}
			for m := range d.usersPerRole {
				p.put(ctx, rec, "/v1/tenants/"+tid+"/roles/"+d.role(r)+"/members/"+d.user(t, r, m), "")
			}
		}
	})
}

// put sends one write and, as a provisioning client should, retries it when
// authzd answers 503: every write is idempotent. The latency recorded is the
// caller's, retries included.
func (p provisioner) put(ctx context.Context, rec func(time.Duration, outcome, error), path, body string) bool {
	const attempts = 5
	start := time.Now()
	var o outcome
	var err error
	for a := range attempts {
		if _, err = p.api.do(ctx, "PUT", path, p.api.provisionToken, body); err == nil {
			o.answers = 1 // every 200 write has its audit row
			break
		}
		var se *statusError
		if !errors.As(err, &se) || se.status != http.StatusServiceUnavailable || a == attempts-1 {
			break
		}
		o.retries++
		time.Sleep(time.Duration(50<<a) * time.Millisecond)
	}
	rec(time.Since(start), o, err)
	return err == nil
}

// checkCase is one check of the mix with the answer the data set implies.
type checkCase struct {
	tenant, user string
	key          authz.Key
	allowed      bool
}

// draw picks one check of the mix: a random user of a random tenant asks
// for a key its role grants (allowed) or one it does not (denied), half and
// half. Checks are drawn from the whole space, not from a precomputed
// sample, so SpiceDB's cache sees as many distinct checks as real traffic
// spread evenly over every tenant would make.
func (d *dataset) draw(rng *rand.Rand) checkCase {
	return d.caseFor(rng, rng.IntN(d.tenants), rng.IntN(d.rolesPerTenant), rng.IntN(d.usersPerRole))
}

// caseFor asks, for member m of role r of tenant t, a key the role grants or
// one it does not, half and half.
func (d *dataset) caseFor(rng *rand.Rand, t, r, m int) checkCase {
	granted := d.roleKeys(t, r)
	c := checkCase{tenant: d.tenant(t), user: d.user(t, r, m)}
	if rng.IntN(2) == 0 {
		c.key, c.allowed = d.keys[granted[rng.IntN(len(granted))]], true
		return c
	}
	for {
		if k := rng.IntN(len(d.keys)); !containsInt(granted, k) {
			c.key = d.keys[k]
			return c
		}
	}
}

// zipfS is the skew of the realistic user pool: a few users make most requests.
const zipfS = 1.1

// drawZipf is draw with the user picked Zipf-like (s = 1.1) instead of
// uniformly: the realistic pool, where the busiest users ask most. Rank r maps
// to tenant r mod tenants first, so the hot users are spread over tenants.
func (d *dataset) drawZipf(rng *rand.Rand) checkCase {
	n := d.tenants * d.rolesPerTenant * d.usersPerRole
	rank := int(rand.NewZipf(rng, zipfS, 1, uint64(n-1)).Uint64())
	t, rest := rank%d.tenants, rank/d.tenants
	return d.caseFor(rng, t, rest%d.rolesPerTenant, (rest/d.rolesPerTenant)%d.usersPerRole)
}

// checkMix draws n checks with a seeded source.
func (d *dataset) checkMix(n int, seed uint64) []checkCase {
	rng := rand.New(rand.NewPCG(seed, 1))
	out := make([]checkCase, n)
	for i := range out {
		out[i] = d.draw(rng)
	}
	return out
}

// users draws n (tenant, user, granted keys) triples for effective-permission reads.
func (d *dataset) users(n int, seed uint64) []effectiveCase {
	rng := rand.New(rand.NewPCG(seed, 2))
	out := make([]effectiveCase, n)
	for i := range out {
		t, r, m := rng.IntN(d.tenants), rng.IntN(d.rolesPerTenant), rng.IntN(d.usersPerRole)
		out[i] = effectiveCase{tenant: d.tenant(t), user: d.user(t, r, m), held: len(d.roleKeys(t, r)), t: t, r: r}
	}
	return out
}

type effectiveCase struct {
	tenant, user string
	held         int // keys the user holds
	t, r         int // tenant and role index
}

// allChecks is every key for the user of e, with the answer the data set implies.
func (d *dataset) allChecks(e effectiveCase) []checkCase {
	granted := d.roleKeys(e.t, e.r)
	out := make([]checkCase, len(d.keys))
	for i, k := range d.keys {
		out[i] = checkCase{tenant: e.tenant, user: e.user, key: k, allowed: containsInt(granted, i)}
	}
	return out
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// directRequest is the CheckPermission a module would send SpiceDB itself for c:
// the same object, permission, subject and consistency as the facade sends.
func directRequest(c checkCase) *v1.CheckPermissionRequest {
	return &v1.CheckPermissionRequest{
		Consistency: &v1.Consistency{Requirement: &v1.Consistency_MinimizeLatency{MinimizeLatency: true}},
		Resource:    &v1.ObjectReference{ObjectType: "tenant", ObjectId: c.tenant},
		Permission:  c.key.Relation(),
		Subject:     &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: authz.SubjectUser, ObjectId: c.user}},
	}
}
