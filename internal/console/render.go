package console

import (
	"bytes"
	"encoding/json"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
)

// funcs are the templates' helpers; none returns template.HTML.
var funcs = template.FuncMap{
	"time": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"join": strings.Join,
	// json shows a value as indented JSON text; html/template escapes it for
	// the page, so JSON's own HTML escaping (\u003c) is left out.
	"json": func(v any) string {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		_ = enc.Encode(v)
		return strings.TrimSpace(b.String())
	},
	"heldText": func(held bool) string {
		if held {
			return "held"
		}
		return "not held"
	},
}

// layoutData is what layout.html renders around a page.
type layoutData struct {
	Title string
	// Session is nil on the sign-in and error pages of a visitor.
	Session *sessionView
	Page    any
}

type sessionView struct {
	TokenName string
	Tenants   []string // nil: every tenant
	Actor     string
	CSRF      string
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, page, title string, data any) {
	t, ok := c.pages[page]
	if !ok {
		c.o.Logger.ErrorContext(r.Context(), "console: no template", "page", page)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	ld := layoutData{Title: title, Page: data}
	if s := sessionFrom(r.Context()); s != nil {
		ld.Session = &sessionView{TokenName: s.token.Name, Tenants: s.token.Tenants, Actor: s.actor, CSRF: s.csrf}
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, ld); err != nil {
		c.internal(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

type errorPage struct {
	Status    int
	Message   string
	RequestID string
}

// fail answers with the error page and a message for the reader.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	c.render(w, r, status, "error", http.StatusText(status), errorPage{Status: status, Message: msg})
}

// internal logs an error of ours under a request id and shows only the id.
func (c *Console) internal(w http.ResponseWriter, r *http.Request, err error) {
	id := uuid.NewString()
	c.o.Logger.ErrorContext(r.Context(), "console: internal error", "err", err, "request_id", id, "method", r.Method, "path", r.URL.Path)
	c.render(w, r, http.StatusInternalServerError, "error", "Internal error",
		errorPage{Status: http.StatusInternalServerError, Message: "Something went wrong on the server.", RequestID: id})
}
