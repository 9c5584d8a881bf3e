package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"time"

	"github.com/scailabs/authzd/internal/authz"
)

// session is a signed-in console user: the token it signed in with (re-read
// by id on every request, never its secret), the actor its writes name, and
// the CSRF secret its forms carry.
type session struct {
	idHash []byte
	token  authz.Token
	actor  string
	csrf   string
}

type sessionKey struct{}

func sessionFrom(ctx context.Context) *session {
	s, _ := ctx.Value(sessionKey{}).(*session)
	return s
}

func randomText() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashOf(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func sameSecret(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func (c *Console) cookie(r *http.Request, name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: Prefix, MaxAge: maxAge, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil || c.o.SecureCookies}
}

// session loads the signed-in session and its token, live, for the routes
// behind it; without one, GETs go to the sign-in page and the rest are 401.
// A state-changing request must carry the session's csrf_token. The token is
// held (it cannot be revoked) while the request runs, so a revocation answers
// only once no write of its sessions is in flight.
func (c *Console) session(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ck, err := r.Cookie(CookieName)
		if err != nil || ck.Value == "" {
			c.noSession(w, r)
			return
		}
		idHash := hashOf(ck.Value)
		tokenID, actor, csrf, err := c.o.Sessions.Session(r.Context(), idHash)
		if authz.ErrorCode(err) == authz.EUNAUTHORIZED {
			c.noSession(w, r)
			return
		}
		if err != nil {
			c.internal(w, r, err)
			return
		}
		s := &session{idHash: idHash, actor: actor, csrf: base64.RawURLEncoding.EncodeToString(csrf)}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if err := r.ParseForm(); err != nil || !sameSecret(r.PostForm.Get("csrf_token"), s.csrf) {
				c.fail(w, r, http.StatusForbidden, "The form's security token is missing or wrong. Reload the page and try again.")
				return
			}
		}
		t, err := c.o.API.TokenByID(r.Context(), tokenID)
		if authz.ErrorCode(err) == authz.EUNAUTHORIZED {
			c.endSession(w, r, idHash)
			return
		}
		if err != nil {
			c.internal(w, r, err)
			return
		}
		s.token = t
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, s)))
	})
}

// endSession drops a session whose token was revoked.
func (c *Console) endSession(w http.ResponseWriter, r *http.Request, idHash []byte) {
	_ = c.o.Sessions.DeleteSession(r.Context(), idHash)
	http.SetCookie(w, c.cookie(r, CookieName, "", -1))
	c.noSession(w, r)
}

// held runs a graph write of the session while its token cannot be revoked
// (Sessions.HoldToken): a revocation answers only after the write, and a
// write after a revocation is refused. ok is false when it has answered;
// err is the write's.
func (c *Console) held(w http.ResponseWriter, r *http.Request, write func(ctx context.Context) error) (ok bool, err error) {
	s := sessionFrom(r.Context())
	if s.token.ID == "bootstrap" { // not a row: it ends when AUTHZ_ADMIN_TOKEN changes
		return true, write(r.Context())
	}
	var werr error
	err = c.o.Sessions.HoldToken(r.Context(), s.token.ID, func(ctx context.Context) error {
		werr = write(ctx)
		return nil
	})
	switch {
	case authz.ErrorCode(err) == authz.EUNAUTHORIZED:
		c.endSession(w, r, s.idHash)
		return false, nil
	case err != nil:
		c.internal(w, r, err)
		return false, nil
	}
	return true, werr
}

func (c *Console) noSession(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		http.Redirect(w, r, Prefix, http.StatusSeeOther)
		return
	}
	c.fail(w, r, http.StatusUnauthorized, "You are not signed in, or your session ended. Sign in again.")
}

type signInPage struct {
	Error string
	Actor string
	CSRF  string
}

// renderSignIn shows the sign-in form with a fresh CSRF token in a cookie
// and the form. It never shows a token that was typed in.
func (c *Console) renderSignIn(w http.ResponseWriter, r *http.Request, status int, msg, actor string) {
	csrf := randomText()
	http.SetCookie(w, c.cookie(r, signInCookie, csrf, 3600))
	c.render(w, r, status, "signin", "Sign in", signInPage{Error: msg, Actor: actor, CSRF: csrf})
}

func (c *Console) handleIndex(w http.ResponseWriter, r *http.Request) {
	ck, err := r.Cookie(CookieName)
	if err != nil || ck.Value == "" {
		c.renderSignIn(w, r, http.StatusOK, "", "")
		return
	}
	if _, _, _, err := c.o.Sessions.Session(r.Context(), hashOf(ck.Value)); err != nil {
		c.renderSignIn(w, r, http.StatusOK, "", "")
		return
	}
	c.session(http.HandlerFunc(c.handleTenants)).ServeHTTP(w, r)
}

func (c *Console) handleSignIn(w http.ResponseWriter, r *http.Request) {
	ck, _ := r.Cookie(signInCookie)
	if err := r.ParseForm(); err != nil || ck == nil || !sameSecret(r.PostForm.Get("csrf_token"), ck.Value) {
		c.fail(w, r, http.StatusForbidden, "The form's security token is missing or wrong. Reload the page and try again.")
		return
	}
	actor := r.PostForm.Get("actor_user_id")
	if actor != "" {
		if _, err := authz.ParseSubject("actor_user_id", actor); err != nil {
			c.renderSignIn(w, r, http.StatusBadRequest, authz.ErrorMessage(err), "")
			return
		}
	}
	t, err := c.o.API.Authenticate(r.Context(), r.PostForm.Get("token"))
	if authz.ErrorCode(err) == authz.EUNAUTHORIZED {
		c.renderSignIn(w, r, http.StatusUnauthorized, "That API token is not valid, or it was revoked.", actor)
		return
	}
	if err != nil {
		c.internal(w, r, err)
		return
	}
	id := randomText()
	csrf := make([]byte, 32)
	_, _ = rand.Read(csrf)
	if err := c.o.Sessions.CreateSession(r.Context(), hashOf(id), c.o.API.TokenRef(t), actor, csrf, time.Now().Add(c.o.SessionTTL)); err != nil {
		c.internal(w, r, err)
		return
	}
	http.SetCookie(w, c.cookie(r, signInCookie, "", -1))
	http.SetCookie(w, c.cookie(r, CookieName, id, int(c.o.SessionTTL/time.Second)))
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

func (c *Console) handleSignOut(w http.ResponseWriter, r *http.Request) {
	if err := c.o.Sessions.DeleteSession(r.Context(), sessionFrom(r.Context()).idHash); err != nil {
		c.internal(w, r, err)
		return
	}
	http.SetCookie(w, c.cookie(r, CookieName, "", -1))
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}
