package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/scailabs/authzd/client"
)

func printJSON(e *env, v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printZedToken(e *env, token string) error {
	if e.json {
		return printJSON(e, map[string]string{"zed_token": token})
	}
	_, err := fmt.Fprintln(e.stdout, token)
	return err
}

func formatTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// table prints aligned columns.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	t.row(header...)
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		if c == "" {
			cells[i] = "-"
		}
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// printAudit prints up to limit events (0: all), page by page so that a long trail
// streams instead of piling up in memory.
func printAudit(ctx context.Context, e *env, c *client.Client, q client.AuditQuery, limit int) error {
	enc := json.NewEncoder(e.stdout)
	var t *table
	if !e.json {
		t = newTable(e.stdout, "TIME", "MODULE", "ACTION", "ACTOR", "TENANT", "RESOURCE", "PERMISSION", "DECISION", "DECISION_ID")
	}
	n, pageRows := 0, 0
	for ev, err := range c.AuditEvents(ctx, q) {
		if err != nil {
			if t != nil {
				t.flush()
			}
			return err
		}
		if e.json {
			if err := enc.Encode(ev); err != nil {
				return err
			}
		} else {
			resource := ""
			if ev.ResourceType != "" || ev.ResourceID != "" {
				resource = ev.ResourceType + ":" + ev.ResourceID
			}
			t.row(formatTime(ev.OccurredAt), ev.Module, ev.Action, ev.ActorUserID, ev.TenantID, resource, ev.Permission, ev.Decision, ev.DecisionID)
			if pageRows++; pageRows == q.Limit {
				pageRows = 0
				if err := t.flush(); err != nil {
					return err
				}
			}
		}
		if n++; limit > 0 && n >= limit {
			break
		}
	}
	if t != nil {
		return t.flush()
	}
	return nil
}
