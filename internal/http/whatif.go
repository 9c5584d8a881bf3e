package http

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/scailabs/authzd/internal/authz"
	"github.com/scailabs/authzd/internal/whatif"
)

// WhatIf answers POST /v1/whatif: the engine that predicts, the decision
// log's questions, and the bounds.
type WhatIf struct {
	Engine    WhatIfEngine
	Decisions DecisionLog
	// MaxQuestions and MaxChanges bound a call (AUTHZ_WHATIF_MAX_QUESTIONS,
	// AUTHZ_WHATIF_MAX_CHANGES); Timeout bounds its time (AUTHZ_WHATIF_TIMEOUT).
	MaxQuestions, MaxChanges int
	Timeout                  time.Duration
}

// WhatIfEngine predicts the flips of changes (internal/whatif).
type WhatIfEngine interface {
	Run(ctx context.Context, tenantID, token string, changes []authz.Record, questions []whatif.Question) (whatif.Result, error)
}

// DecisionLog groups a tenant's decisions in a window into questions.
type DecisionLog interface {
	DecisionGroups(ctx context.Context, tenantID string, since, until time.Time, limit int) ([]authz.DecisionGroup, int, error)
}

type whatifBody struct {
	TenantID         string            `json:"tenant_id"`
	Since            string            `json:"since"`
	Until            string            `json:"until"`
	ConsistencyToken string            `json:"consistency_token"`
	Changes          []json.RawMessage `json:"changes"`
}

type whatifFlip struct {
	UserID        string        `json:"user_id"`
	Permission    string        `json:"permission"`
	Resource      *resourceBody `json:"resource,omitempty"`
	From          string        `json:"from"`
	To            string        `json:"to"`
	Decisions     int64         `json:"decisions"`
	LastDecidedAt time.Time     `json:"last_decided_at"`
}

type whatifAnswer struct {
	Questions int          `json:"questions"`
	Skipped   int          `json:"skipped"`
	Flips     []whatifFlip `json:"flips"`
	ZedToken  string       `json:"zed_token"`
}

func decisionWord(allowed bool) string {
	if allowed {
		return authz.DecisionAllowed
	}
	return authz.DecisionDenied
}

// handleWhatIf predicts which of a tenant's decisions in a window the
// changes would turn around. It writes nothing but its audit row.
func (s *Server) handleWhatIf(w http.ResponseWriter, r *http.Request) {
	if s.whatif == nil {
		s.Error(w, r, authz.Errorf(authz.EUNAVAILABLE, "the what-if is not configured on this server"))
		return
	}
	wi := s.whatif
	var body whatifBody
	if err := decode(r, &body, false); err != nil {
		s.Error(w, r, err)
		return
	}
	since, until, err := whatifWindow(body, time.Now())
	if err != nil {
		s.Error(w, r, err)
		return
	}
	if err := authz.ValidateID("tenant_id", body.TenantID); err != nil {
		s.Error(w, r, err)
		return
	}
	if len(body.ConsistencyToken) > 1024 {
		s.Error(w, r, authz.Errorf(authz.EINVALID, "consistency_token is too long"))
		return
	}
	if body.Changes == nil {
		s.Error(w, r, authz.Errorf(authz.EINVALID, "changes is required (a list of records with \"op\")"))
		return
	}
	if len(body.Changes) > wi.MaxChanges {
		s.Error(w, r, authz.Errorf(authz.EINVALID, "changes holds %d changes; the bound is %d (AUTHZ_WHATIF_MAX_CHANGES)", len(body.Changes), wi.MaxChanges))
		return
	}
	changes, digest, err := s.whatifChanges(body.TenantID, body.Changes)
	if err != nil {
		s.Error(w, r, err)
		return
	}

	// The call may take longer than the server's write timeout allows others.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(wi.Timeout + 10*time.Second))
	ctx, cancel := bounded(r.Context(), wi.Timeout)
	defer cancel()
	groups, n, err := wi.Decisions.DecisionGroups(ctx, body.TenantID, since, until, wi.MaxQuestions)
	if err != nil {
		s.Error(w, r, timedOut(ctx, err, wi.Timeout))
		return
	}
	if n > wi.MaxQuestions {
		s.Error(w, r, authz.Errorf(authz.EINVALID, "the window holds %d questions; the bound is %d (AUTHZ_WHATIF_MAX_QUESTIONS): narrow since and until", n, wi.MaxQuestions))
		return
	}
	questions, skipped := whatif.Questions(groups, func(raw string) (authz.Key, bool) {
		k, ok := s.known[raw]
		return k, ok
	})
	res, err := wi.Engine.Run(ctx, body.TenantID, body.ConsistencyToken, changes, questions)
	if err != nil {
		s.Error(w, r, timedOut(ctx, err, wi.Timeout))
		return
	}
	ans := whatifAnswer{Questions: res.Questions, Skipped: skipped + res.Skipped, Flips: make([]whatifFlip, len(res.Flips)), ZedToken: res.ZedToken}
	for i, f := range res.Flips {
		ans.Flips[i] = whatifFlip{UserID: f.Subject.String(), Permission: f.Key.String(), From: decisionWord(f.From), To: decisionWord(f.To),
			Decisions: f.Decisions, LastDecidedAt: f.LastDecidedAt.UTC()}
		if f.Resource != nil {
			ans.Flips[i].Resource = &resourceBody{Type: f.Resource.Type, ID: f.Resource.ID}
		}
	}
	e := authz.Event{
		OccurredAt: time.Now(), Module: authz.AuditModule, Action: "whatif", ActorUserID: actorFrom(r.Context()),
		TenantID: body.TenantID, Decision: authz.DecisionAllowed, ZedToken: res.ZedToken, DecisionID: newDecisionID(),
		Client: clientName(tokenFrom(r.Context())), RequestID: RequestID(r.Context()),
		Details: map[string]any{"since": since.Format(time.RFC3339Nano), "until": until.Format(time.RFC3339Nano),
			"changes": len(changes), "changes_sha256": digest, "questions": ans.Questions, "flips": len(ans.Flips)},
	}
	if err := s.record(r, e); err != nil {
		s.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ans)
}

// boundedKey holds the context whose deadline bounds a what-if.
type boundedKey struct{}

// bounded is ctx ended when the bound passes, by cancellation rather than a
// deadline: a deadline travels with each SpiceDB call, whose server may give
// up a moment before this process's clock says the bound passed, so the
// failure could not be told from an unavailable SpiceDB. Cancelled only once
// the bound has passed, it always can (timedOut).
func bounded(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	deadline, cancelDeadline := context.WithTimeout(ctx, d)
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(deadline, cancelWork)
	return context.WithValue(work, boundedKey{}, deadline), func() { stop(); cancelWork(); cancelDeadline() }
}

// timedOut names the bound when the call's own bound ended it.
func timedOut(ctx context.Context, err error, bound time.Duration) error {
	deadline, _ := ctx.Value(boundedKey{}).(context.Context)
	if deadline != nil && ctx.Err() != nil && errors.Is(deadline.Err(), context.DeadlineExceeded) {
		return authz.Wrap(authz.EUNAVAILABLE, err, "the what-if did not finish within "+bound.String()+" (AUTHZ_WHATIF_TIMEOUT)")
	}
	return err
}

// whatifWindow validates since and until (default now): RFC 3339, since
// not in the future and before until.
func whatifWindow(b whatifBody, now time.Time) (since, until time.Time, err error) {
	if b.Since == "" {
		return since, until, authz.Errorf(authz.EINVALID, "since is required (RFC 3339)")
	}
	if since, err = time.Parse(time.RFC3339Nano, b.Since); err != nil {
		return since, until, authz.Errorf(authz.EINVALID, "since is not an RFC 3339 time")
	}
	until = now
	if b.Until != "" {
		if until, err = time.Parse(time.RFC3339Nano, b.Until); err != nil {
			return since, until, authz.Errorf(authz.EINVALID, "until is not an RFC 3339 time")
		}
	}
	if since.After(now) {
		return since, until, authz.Errorf(authz.EINVALID, "since is in the future")
	}
	if !since.Before(until) {
		return since, until, authz.Errorf(authz.EINVALID, "since must be before until")
	}
	return since, until, nil
}

// whatifChanges decodes each change with the record decoder of the bulk
// import (every record with "op"), naming its index in any error, and
// returns them with the SHA-256 of their canonical form.
func (s *Server) whatifChanges(tenantID string, raw []json.RawMessage) ([]authz.Record, string, error) {
	out := make([]authz.Record, len(raw))
	sum := sha256.New()
	for i, msg := range raw {
		prefix := "changes[" + strconv.Itoa(i) + "]"
		var line bytes.Buffer
		if err := json.Compact(&line, msg); err != nil {
			return nil, "", authz.Errorf(authz.EINVALID, "%s: not valid JSON", prefix)
		}
		dec := authz.NewRecordDecoder(&line, authz.RecordRules{
			AllowOp: true, ResourceTypes: s.model.ResourceTypes(),
			Key: func(field, raw string) (authz.Key, error) { return s.key(prefix+"."+field, raw) },
		})
		rec, err := dec.Next()
		if err != nil {
			msg := authz.ErrorMessage(err)
			if !strings.HasPrefix(msg, prefix) {
				msg = prefix + ": " + msg
			}
			return nil, "", authz.Errorf(authz.EINVALID, "%s", msg)
		}
		if rec.TenantID != "" && rec.TenantID != tenantID {
			return nil, "", authz.Errorf(authz.EINVALID, "%s: tenant_id %q is another tenant than the what-if's %q", prefix, rec.TenantID, tenantID)
		}
		rec.Line = 0
		out[i] = rec
		sum.Write(rec.AppendJSON(nil))
		sum.Write([]byte{'\n'})
	}
	return out, hex.EncodeToString(sum.Sum(nil)), nil
}
