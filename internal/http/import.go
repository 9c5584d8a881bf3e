package http

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"mime"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scailabs/authzd/internal/authz"
)

// Transfer is the graph's side of importing and exporting record documents.
type Transfer interface {
	// ReadWorld reads the provisioning state at one revision (one tenant's
	// part of it when tenantID is set).
	ReadWorld(ctx context.Context, tenantID string) (authz.World, error)
	// WriteBatch applies updates atomically if every condition holds; a
	// batch refused for its size answers ETOOLARGE.
	WriteBatch(ctx context.Context, updates []authz.Update, conditions []authz.Condition) (string, error)
	// ImportBarrier writes nothing at a revision after every earlier write.
	ImportBarrier(ctx context.Context) (string, error)
}

// What a zero import Options field means. authzd's configuration
// (cmd/authzd/app) has the same defaults, which a test there keeps equal.
const (
	DefaultImportMaxBytes = 1 << 30
	DefaultImportTimeout  = 30 * time.Minute
	DefaultImportBatch    = 1000
	DefaultImportWriters  = 4
)

// ImportOptions configure POST /v1/import and GET /v1/export.
type ImportOptions struct {
	// MaxBytes caps an import's body (default 1 GiB).
	MaxBytes int64
	// Timeout bounds an import or export, past the server's own deadlines (default 30m).
	Timeout time.Duration
	// SpoolDir holds an import's document while it is validated and written
	// (default the OS temp dir).
	SpoolDir string
	// Batch bounds the updates of one write (default 1000).
	Batch int
	// Writers bounds the batches written at once (default 4).
	Writers int
}

func (o ImportOptions) withDefaults() ImportOptions {
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultImportMaxBytes
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultImportTimeout
	}
	if o.Batch <= 0 {
		o.Batch = DefaultImportBatch
	}
	if o.Writers <= 0 {
		o.Writers = DefaultImportWriters
	}
	return o
}

// phaseOf is the write phase of a record kind: every record's parents are
// written in an earlier phase. Phase 0 purges what offboardings left under
// the ids of tenants the document creates.
var phaseOf = map[string]int{
	authz.KindPartner: 1, authz.KindSuperAdmin: 1,
	authz.KindPartnerAdmin: 2, authz.KindTenant: 2,
	authz.KindRole: 3, authz.KindResource: 3,
	authz.KindMember: 4,
}

const phases = 5

type kindCounts struct {
	Created   int `json:"created"`
	Updated   int `json:"updated"`
	Unchanged int `json:"unchanged"`
	Removed   int `json:"removed"`
}

type importAnswer struct {
	Created   int                    `json:"created"`
	Updated   int                    `json:"updated"`
	Unchanged int                    `json:"unchanged"`
	Removed   int                    `json:"removed"`
	Kinds     map[string]*kindCounts `json:"kinds"`
	Batches   int                    `json:"batches"`
	DryRun    bool                   `json:"dry_run,omitempty"`
	ZedToken  string                 `json:"zed_token"`
}

func (a *importAnswer) count(kind, status string) {
	k := a.Kinds[kind]
	if k == nil {
		k = &kindCounts{}
		a.Kinds[kind] = k
	}
	switch status {
	case authz.StatusCreated:
		a.Created++
		k.Created++
	case authz.StatusUpdated:
		a.Updated++
		k.Updated++
	default:
		a.Unchanged++
		k.Unchanged++
	}
}

// importRun is one import: its spooled document and what validating it found.
type importRun struct {
	s      *Server
	r      *http.Request
	spool  *os.File
	rules  authz.RecordRules
	world  authz.World
	actor  string
	client string
	// seen holds each record identity's line and a hash of what it says;
	// a later record with the same identity is a duplicate (skipped) or a
	// conflict (refused).
	seen map[string]seenRecord
	// dups are the lines of duplicates.
	dups map[int]bool
	// renamed are the identities of roles whose keys stay but whose name changes.
	renamed map[string]bool
	answer  importAnswer
	// planned counts each phase's updates; packing packs them into batches
	// as write does, to count the batches before any is written.
	planned [phases]int
	packing [phases]*packer

	batches atomic.Int64 // batches of the import, growing when one is split
	landed  atomic.Int64
}

type seenRecord struct {
	line int
	sum  uint64
}

func (s *Server) recordRules() authz.RecordRules {
	return authz.RecordRules{Key: s.key, ResourceTypes: s.model.ResourceTypes()}
}

func (s *Server) handleImport(w http.ResponseWriter, r *http.Request) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-ndjson" {
		s.Error(w, r, authz.Errorf(authz.EINVALID, "Content-Type must be application/x-ndjson (one JSON record a line)"))
		return
	}
	q := r.URL.Query()
	dryRun := false
	if v := q.Get("dry_run"); v != "" {
		if dryRun, err = strconv.ParseBool(v); err != nil {
			s.Error(w, r, authz.Errorf(authz.EINVALID, "dry_run must be true or false"))
			return
		}
	}
	if m := q.Get("mode"); m != "" && m != "merge" {
		s.Error(w, r, authz.Errorf(authz.EINVALID, "mode %q is not supported (merge is the only mode)", m))
		return
	}
	ctx, cancel := s.extendDeadlines(w, r)
	defer cancel()
	r = r.WithContext(ctx)
	spool, err := os.CreateTemp(s.imports.SpoolDir, "authzd-import-*.ndjson")
	if err != nil {
		s.Error(w, r, authz.Wrap(authz.EINTERNAL, err, "cannot spool the document"))
		return
	}
	defer func() { _ = spool.Close(); _ = os.Remove(spool.Name()) }()
	run := &importRun{s: s, r: r, spool: spool, rules: s.recordRules(), actor: actorFrom(ctx),
		client: clientName(tokenFrom(ctx)), seen: map[string]seenRecord{}, dups: map[int]bool{}, renamed: map[string]bool{},
		answer: importAnswer{Kinds: map[string]*kindCounts{}}}
	for p := range run.packing {
		run.packing[p] = &packer{limit: s.imports.Batch}
	}
	body := http.MaxBytesReader(w, r.Body, s.imports.MaxBytes)
	if err := run.scan(io.TeeReader(body, spool)); err != nil {
		s.Error(w, r, err)
		return
	}
	if run.world, err = s.transfer.ReadWorld(ctx, ""); err != nil {
		s.Error(w, r, err)
		return
	}
	if err := run.check(ctx); err != nil {
		s.Error(w, r, err)
		return
	}
	for p := range run.packing {
		run.batches.Add(int64(run.packing[p].batches()))
	}
	run.answer.Batches = int(run.batches.Load())
	if dryRun {
		run.answer.DryRun, run.answer.ZedToken = true, run.world.Revision()
		run.finish(w, "import.dry_run", nil)
		return
	}
	for p := range phases {
		if run.planned[p] == 0 {
			continue
		}
		if err := run.write(ctx, p); err != nil {
			s.Error(w, r, run.failure(err))
			return
		}
	}
	run.answer.Batches = int(run.batches.Load())
	run.finish(w, "import", run.renamedRows())
}

// extendDeadlines raises the connection's read and write deadlines past the
// server's to the import timeout, and bounds the request's context by it.
func (s *Server) extendDeadlines(w http.ResponseWriter, r *http.Request) (context.Context, context.CancelFunc) {
	deadline := time.Now().Add(s.imports.Timeout)
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(deadline) // not every ResponseWriter (e.g. a test recorder) has deadlines
	_ = rc.SetWriteDeadline(deadline)
	return context.WithDeadline(r.Context(), deadline)
}

func recordSum(rec authz.Record) uint64 {
	h := fnv.New64a()
	_, _ = h.Write(rec.AppendJSON(nil))
	return h.Sum64()
}

// scan decodes and validates every record while the document is spooled,
// refusing conflicting duplicates at the second.
func (run *importRun) scan(body io.Reader) error {
	dec := authz.NewRecordDecoder(body, run.rules)
	for {
		rec, err := dec.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return authz.Errorf(authz.ETOOLARGE, "the document is over %d bytes (AUTHZ_IMPORT_MAX_BYTES)", tooLarge.Limit)
		}
		if err != nil {
			return err
		}
		id, sum := rec.Identity(), recordSum(rec)
		if prev, ok := run.seen[id]; ok {
			if prev.sum != sum {
				return authz.AtLine(rec.Line, authz.Errorf(authz.EINVALID, "conflicts with line %d, which says otherwise of the same %s", prev.line, rec.Kind))
			}
			run.dups[rec.Line] = true
			continue
		}
		run.seen[id] = seenRecord{line: rec.Line, sum: sum}
	}
}

// each decodes the spooled document again, calling fn with every record that
// is not a duplicate.
func (run *importRun) each(fn func(authz.Record) error) error {
	if _, err := run.spool.Seek(0, io.SeekStart); err != nil {
		return authz.Wrap(authz.EINTERNAL, err, "cannot read the spooled document")
	}
	dec := authz.NewRecordDecoder(run.spool, run.rules)
	for {
		rec, err := dec.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return authz.Wrap(authz.EINTERNAL, err, "cannot read the spooled document")
		}
		if run.dups[rec.Line] {
			continue
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
}

func (run *importRun) inDocument(identity string) bool {
	_, ok := run.seen[identity]
	return ok
}

// missing is the error of a reference neither the document nor authzd holds.
func missing(rec authz.Record, what, id string) error {
	return authz.AtLine(rec.Line, authz.Errorf(authz.EINVALID, "%s %q is neither in the document nor in authzd", what, id))
}

// check resolves every reference against the document and the world, and
// plans every record, counting what the import would do.
func (run *importRun) check(ctx context.Context) error {
	type roleRef struct {
		identity, roleID, name string
		line                   int
	}
	named := map[string][]roleRef{} // tenant -> existing roles whose names to compare
	err := run.each(func(rec authz.Record) error {
		switch rec.Kind {
		case authz.KindPartnerAdmin, authz.KindTenant:
			if !run.inDocument(authz.KindPartner+" "+rec.PartnerID) && !run.world.HasPartner(rec.PartnerID) {
				return missing(rec, "partner", rec.PartnerID)
			}
		case authz.KindRole, authz.KindResource, authz.KindMember:
			if !run.inDocument(authz.KindTenant+" "+rec.TenantID) && !run.world.HasTenant(rec.TenantID) {
				return missing(rec, "tenant", rec.TenantID)
			}
			if rec.Kind == authz.KindMember && !authz.IsTenantRole(rec.RoleID) &&
				!run.inDocument(authz.KindRole+" "+rec.TenantID+" "+rec.RoleID) && !run.world.HasRole(rec.TenantID, rec.RoleID) {
				return missing(rec, "role", rec.TenantID+"/"+rec.RoleID)
			}
		}
		plan := run.world.Plan(rec)
		if rec.Kind == authz.KindRole && plan.Status != authz.StatusCreated {
			named[rec.TenantID] = append(named[rec.TenantID], roleRef{identity: rec.Identity(), roleID: rec.RoleID, name: rec.Name, line: rec.Line})
		}
		run.answer.count(rec.Kind, plan.Status)
		run.planned[0] += len(plan.Purge)
		run.planned[phaseOf[rec.Kind]] += len(plan.Updates)
		run.packing[0].add(phaseWrite(plan, rec, 0))
		run.packing[phaseOf[rec.Kind]].add(phaseWrite(plan, rec, phaseOf[rec.Kind]))
		return nil
	})
	if err != nil {
		return err
	}
	// A role whose keys stay is updated when its name changes: names live in
	// its role.put audit rows.
	for tenantID, refs := range named {
		ids := make([]string, len(refs))
		for i, ref := range refs {
			ids[i] = ref.roleID
		}
		names, err := run.s.store.RoleNames(ctx, tenantID, ids)
		if err != nil {
			return err
		}
		for _, ref := range refs {
			if names[ref.roleID] == ref.name {
				continue
			}
			run.renamed[ref.identity] = true
		}
	}
	// Re-count renamed roles that are otherwise unchanged.
	if len(run.renamed) > 0 {
		return run.each(func(rec authz.Record) error {
			if run.renamed[rec.Identity()] && run.world.Plan(rec).Status == authz.StatusUnchanged {
				k := run.answer.Kinds[rec.Kind]
				k.Unchanged--
				k.Updated++
				run.answer.Unchanged--
				run.answer.Updated++
			}
			return nil
		})
	}
	return nil
}

// packer packs a phase's record writes into batches: a record's writes join
// the open batch unless they would take its updates or its distinct
// conditions past the limit, and a batch at the limit is closed. check
// packs to count the batches before any is written, write to write them.
type packer struct {
	limit  int
	open   batch
	seen   map[authz.Condition]bool
	closed int
}

// add packs w and returns the batches it closed.
func (p *packer) add(w recordWrite) []batch {
	if len(w.updates) == 0 {
		return nil
	}
	var out []batch
	fresh := 0
	for _, c := range w.conditions {
		if !p.seen[c] {
			fresh++
		}
	}
	if p.open.updates > 0 && (p.open.updates+len(w.updates) > p.limit || len(p.seen)+fresh > p.limit) {
		out = append(out, p.close())
	}
	if p.seen == nil {
		p.seen = map[authz.Condition]bool{}
	}
	for _, c := range w.conditions {
		p.seen[c] = true
	}
	p.open.items = append(p.open.items, w)
	p.open.updates += len(w.updates)
	if p.open.updates >= p.limit || len(p.seen) >= p.limit {
		out = append(out, p.close())
	}
	return out
}

// close closes the open batch and returns it.
func (p *packer) close() batch {
	b := p.open
	p.open, p.seen = batch{}, nil
	p.closed++
	return b
}

// batches counts the batches packed so far, the open one included.
func (p *packer) batches() int {
	if p.open.updates > 0 {
		return p.closed + 1
	}
	return p.closed
}

// recordWrite is what one record writes in one phase.
type recordWrite struct {
	updates    []authz.Update
	conditions []authz.Condition
	role       *authz.Record // a role that owes a role.put row
}

// phaseWrite is what rec writes in phase p: its purge in phase 0 (while its
// tenant still does not exist, as PutTenant purges), its own updates in its
// kind's phase, else nothing.
func phaseWrite(plan authz.RecordPlan, rec authz.Record, p int) recordWrite {
	if p == 0 {
		if len(plan.Purge) == 0 {
			return recordWrite{}
		}
		return recordWrite{updates: plan.Purge, conditions: []authz.Condition{{ResourceType: "tenant", ResourceID: rec.TenantID, Relation: "platform"}}}
	}
	if phaseOf[rec.Kind] != p || len(plan.Updates) == 0 {
		return recordWrite{}
	}
	w := recordWrite{updates: plan.Updates, conditions: plan.Conditions}
	if rec.Kind == authz.KindRole {
		w.role = &rec
	}
	return w
}

// batch is one write: the writes of whole records where they fit.
type batch struct {
	items   []recordWrite
	updates int
}

// flat is the batch's updates, its conditions without repeats, and the roles
// that owe role.put rows.
func (b batch) flat() ([]authz.Update, []authz.Condition, []authz.Record) {
	var updates []authz.Update
	var conditions []authz.Condition
	var roles []authz.Record
	seen := map[authz.Condition]bool{}
	for _, it := range b.items {
		updates = append(updates, it.updates...)
		for _, c := range it.conditions {
			if !seen[c] {
				seen[c] = true
				conditions = append(conditions, c)
			}
		}
		if it.role != nil {
			roles = append(roles, *it.role)
		}
	}
	return updates, conditions, roles
}

// halves splits a batch in two: its records, or the updates of its one record.
func (b batch) halves() (batch, batch, bool) {
	if len(b.items) > 1 {
		h := len(b.items) / 2
		return batch{items: b.items[:h]}, batch{items: b.items[h:]}, true
	}
	if len(b.items) == 1 && len(b.items[0].updates) > 1 {
		it := b.items[0]
		h := len(it.updates) / 2
		second := it
		second.updates, second.role = it.updates[h:], nil
		it.updates = it.updates[:h]
		return batch{items: []recordWrite{it}}, batch{items: []recordWrite{second}}, true
	}
	return batch{}, batch{}, false
}

// write writes phase p's updates in batches, up to Writers at once.
func (run *importRun) write(ctx context.Context, p int) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan batch)
	var wg sync.WaitGroup
	for range run.s.imports.Writers {
		wg.Go(func() {
			for b := range work {
				if ctx.Err() != nil {
					continue
				}
				if err := run.writeBatch(ctx, b); err != nil {
					cancel(err)
				}
			}
		})
	}
	send := func(b batch) {
		select {
		case work <- b:
		case <-ctx.Done():
		}
	}
	pk := packer{limit: run.s.imports.Batch}
	err := run.each(func(rec authz.Record) error {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		for _, b := range pk.add(phaseWrite(run.world.Plan(rec), rec, p)) {
			send(b)
		}
		return nil
	})
	if err == nil && pk.open.updates > 0 {
		send(pk.close())
	}
	close(work)
	wg.Wait()
	if err != nil && !errors.Is(err, context.Cause(ctx)) {
		return err
	}
	if cause := context.Cause(ctx); cause != nil {
		return cause
	}
	return nil
}

// writeBatch writes one batch tagged with its import.batch row's decision_id
// and commits that row (with the batch's role.put rows) right after. A batch
// SpiceDB refuses for its size is split in two.
func (run *importRun) writeBatch(ctx context.Context, b batch) error {
	decisionID := newDecisionID()
	updates, conditions, roles := b.flat()
	token, err := run.s.transfer.WriteBatch(authz.WithWriteID(ctx, decisionID), updates, conditions)
	if authz.ErrorCode(err) == authz.ETOOLARGE {
		if first, second, ok := b.halves(); ok {
			run.batches.Add(1)
			if err := run.writeBatch(ctx, first); err != nil {
				return err
			}
			return run.writeBatch(ctx, second)
		}
	}
	if err != nil {
		return err
	}
	n := run.landed.Add(1)
	changes := make([]string, len(updates))
	for i, u := range updates {
		changes[i] = u.String()
	}
	e := run.event("import.batch", decisionID, token)
	e.Details = map[string]any{"import_id": RequestID(ctx), "batch": n, "batches": run.batches.Load(), "changes": changes}
	events := append([]authz.Event{e}, run.roleRows(roles, token)...)
	return run.s.record(run.r, events...)
}

func (run *importRun) event(action, decisionID, token string) authz.Event {
	return authz.Event{
		OccurredAt: time.Now(), Module: authz.AuditModule, Action: action, ActorUserID: run.actor,
		Decision: authz.DecisionAllowed, ZedToken: token, DecisionID: decisionID, Client: run.client,
		RequestID: RequestID(run.r.Context()),
	}
}

// roleRows are the role.put rows of roles an import created or changed:
// the audit log is where role names live.
func (run *importRun) roleRows(roles []authz.Record, token string) []authz.Event {
	out := make([]authz.Event, 0, len(roles))
	for _, rec := range roles {
		names := make([]string, len(rec.Keys))
		for i, k := range rec.Keys {
			names[i] = k.String()
		}
		e := run.event("role.put", newDecisionID(), token)
		e.TenantID, e.ResourceType, e.ResourceID = rec.TenantID, "role", rec.RoleID
		e.Details = map[string]any{"name": rec.Name, "module_permissions": names, "import_id": RequestID(run.r.Context())}
		out = append(out, e)
	}
	return out
}

// renamedRows are the role.put rows of roles whose name alone changed.
func (run *importRun) renamedRows() []authz.Record {
	if len(run.renamed) == 0 {
		return nil
	}
	var out []authz.Record
	_ = run.each(func(rec authz.Record) error {
		if run.renamed[rec.Identity()] && run.world.Plan(rec).Status == authz.StatusUnchanged {
			out = append(out, rec)
		}
		return nil
	})
	return out
}

// failure is what a write that stopped part-way answers.
func (run *importRun) failure(err error) error {
	if authz.ErrorCode(err) == authz.ECONFLICT {
		return err
	}
	return authz.Wrap(authz.EUNAVAILABLE, err, fmt.Sprintf(
		"the import stopped after %d of %d batches landed; running the same document again finishes it", run.landed.Load(), run.batches.Load()))
}

// finish writes the barrier (unless a dry run), commits the final row with
// the role.put rows owed, and answers.
func (run *importRun) finish(w http.ResponseWriter, action string, renamed []authz.Record) {
	ctx := run.r.Context()
	decisionID := newDecisionID()
	if !run.answer.DryRun {
		token, err := run.s.transfer.ImportBarrier(authz.WithWriteID(ctx, decisionID))
		if err != nil {
			run.s.Error(w, run.r, run.failure(err))
			return
		}
		run.answer.ZedToken = token
	}
	e := run.event(action, decisionID, run.answer.ZedToken)
	e.Details = map[string]any{"import_id": RequestID(ctx), "created": run.answer.Created, "updated": run.answer.Updated,
		"unchanged": run.answer.Unchanged, "removed": run.answer.Removed, "batches": run.answer.Batches, "kinds": run.answer.Kinds}
	events := append([]authz.Event{e}, run.roleRows(renamed, run.answer.ZedToken)...)
	if err := run.s.record(run.r, events...); err != nil {
		run.s.Error(w, run.r, err)
		return
	}
	writeJSON(w, http.StatusOK, run.answer)
}

// ImportStatuser reads an import's progress from the audit log.
type ImportStatuser interface {
	ImportStatus(ctx context.Context, importID string) (authz.ImportStatus, error)
}

// handleImportStatus answers how many of an import's batches have landed.
// An import's id is its request's X-Request-Id (a caller that wants to follow
// its import sends one); before the first batch lands, everything is zero.
func (s *Server) handleImportStatus(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("import_id")
	if id == "" || len(id) > 1024 {
		s.Error(w, r, authz.Errorf(authz.EINVALID, "import_id is required: the X-Request-Id of the import"))
		return
	}
	st, err := s.importStatus.ImportStatus(r.Context(), id)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}
