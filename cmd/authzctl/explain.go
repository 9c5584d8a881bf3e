package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/scailabs/authzd/client"
)

func explainCmd() *command {
	var cf checkFlags
	return &command{
		name: "explain", args: "<tenant_id> <user_id> <key>", nargs: 3,
		summary: "Check like check, and say why the answer is allowed or denied.",
		help: `Prints the decision, the reasons (which role, partner, ownership or exclusion decided it; for a
deny, what is missing) and SpiceDB's trace of the check; --json prints authzd's answer as is.
Exits 0 when allowed and 1 when denied, like check. Without --consistency-token the check sees
every write committed before it. Audited like a check, with action "explain".
  authzctl explain t1 alice scaibunker:execute --resource bunker:b1`,
		flags: cf.define,
		run: func(ctx context.Context, e *env, c *client.Client, a []string) error {
			opts, err := cf.options()
			if err != nil {
				return err
			}
			x, err := c.Explain(ctx, a[0], a[1], a[2], opts...)
			if err != nil {
				return err
			}
			return printDecision(e, x.Allowed, x, func(w io.Writer) error { return printExplanation(w, x) })
		},
	}
}

// printExplanation prints the decision, the reasons as a list and the trace as
// an indented tree, one step a line.
func printExplanation(w io.Writer, x client.Explanation) error {
	word := "denied"
	if x.Allowed {
		word = "allowed"
	}
	fmt.Fprintf(w, "%s\tdecision_id=%s checked_at=%s\n\nWhy:\n", word, x.DecisionID, x.CheckedAt)
	for _, r := range x.Reasons {
		fmt.Fprintf(w, "  - %s\n", r)
	}
	if x.Trace != nil {
		fmt.Fprintln(w, "\nSpiceDB trace:")
		t := newTable(w, "  STEP", "KIND", "RESULT")
		printTrace(t, x.Trace, 1)
		return t.flush()
	}
	return nil
}

func printTrace(t *table, n *client.Trace, depth int) {
	result := n.Result
	if n.Cached {
		result += " (cached)"
	}
	t.row(strings.Repeat("  ", depth)+n.Object+"#"+n.Permission, n.Kind, result)
	for _, s := range n.Steps {
		printTrace(t, s, depth+1)
	}
}

// printDecision prints a check's answer v: as JSON with --json, else with
// text. A deny is errDenied once printed, so that authzctl exits 1.
func printDecision(e *env, allowed bool, v any, text func(io.Writer) error) error {
	var err error
	if e.json {
		err = printJSON(e, v)
	} else {
		err = text(e.stdout)
	}
	if err == nil && !allowed {
		return errDenied
	}
	return err
}

// checkFlags are check's and explain's --resource (type:id) and
// --consistency-token.
type checkFlags struct{ resource, consistency string }

func (f *checkFlags) define(fs *flag.FlagSet) {
	fs.StringVar(&f.resource, "resource", "", "check on one resource, as type:id (e.g. bunker:b1)")
	fs.StringVar(&f.consistency, "consistency-token", "", "zed token of a write the answer must reflect")
}

// options turns the flags into client options.
func (f *checkFlags) options() ([]client.CheckOption, error) {
	var opts []client.CheckOption
	if f.resource != "" {
		typ, id, ok := strings.Cut(f.resource, ":")
		if !ok || typ == "" || id == "" {
			return nil, usagef("--resource %q must be type:id, e.g. bunker:b1", f.resource)
		}
		opts = append(opts, client.WithResource(typ, id))
	}
	if f.consistency != "" {
		opts = append(opts, client.WithConsistencyToken(f.consistency))
	}
	return opts, nil
}
