package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/scailabs/authzd/client"
)

func importCmd() *command {
	var dryRun bool
	return &command{
		name: "import", args: "<file>|-", nargs: 1,
		summary: "Import a record document (one JSON record a line) into authzd.",
		help: `The file (or standard input with "-") holds records as authzctl export writes them. authzd
validates the whole document before it writes anything; a refused document is reported as
FILE:LINE: message. Only what differs from authzd's state is written; importing the same
document again creates nothing. On a terminal, the bytes sent and then the batches written
(GET /v1/import/status) are shown while the import runs.`,
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&dryRun, "dry-run", false, "validate and count, write nothing")
		},
		run: func(ctx context.Context, e *env, c *client.Client, a []string) error {
			name := a[0]
			var in io.Reader = os.Stdin
			if name != "-" {
				f, err := os.Open(name)
				if err != nil {
					return usagef("%v", err)
				}
				defer f.Close()
				in = f
			} else {
				name = "<stdin>"
			}
			id := "import-" + rand.Text()
			opts := []client.ImportOption{client.WithImportID(id)}
			if dryRun {
				opts = append(opts, client.DryRun())
			}
			stop := progress(ctx, e, c, id, &in)
			res, err := c.Import(ctx, in, opts...)
			stop()
			var ae *client.Error
			if errors.As(err, &ae) && ae.Line > 0 {
				return fmt.Errorf("%s:%d: %s", name, ae.Line, ae.Message)
			}
			if err != nil {
				return err
			}
			if e.json {
				return printJSON(e, res)
			}
			verb := "imported"
			if res.DryRun {
				verb = "dry run"
			}
			fmt.Fprintf(e.stdout, "%s: %d created, %d updated, %d unchanged, %d removed in %d batches\n",
				verb, res.Created, res.Updated, res.Unchanged, res.Removed, res.Batches)
			kinds := make([]string, 0, len(res.Kinds))
			for k := range res.Kinds {
				kinds = append(kinds, k)
			}
			sort.Strings(kinds)
			t := newTable(e.stdout, "KIND", "CREATED", "UPDATED", "UNCHANGED", "REMOVED")
			for _, k := range kinds {
				n := res.Kinds[k]
				t.row(k, fmt.Sprint(n.Created), fmt.Sprint(n.Updated), fmt.Sprint(n.Unchanged), fmt.Sprint(n.Removed))
			}
			if err := t.flush(); err != nil {
				return err
			}
			if res.DryRun {
				_, err = fmt.Fprintln(e.stdout, "validated at revision:", res.ZedToken)
				return err
			}
			_, err = fmt.Fprintln(e.stdout, "zed token:", res.ZedToken)
			return err
		},
	}
}

// progress shows on a terminal's stderr the bytes read from *in (replacing
// it by a counting reader) and, once all are sent, the batches of import id
// that have landed; the returned func ends the display.
func progress(ctx context.Context, e *env, c *client.Client, id string, in *io.Reader) func() {
	f, ok := e.stderr.(*os.File)
	if !ok {
		return func() {}
	}
	if st, err := f.Stat(); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return func() {}
	}
	cr := &countingReader{r: *in}
	*in = cr
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				fmt.Fprintln(f)
				return
			case <-tick.C:
			}
			line := fmt.Sprintf("sent %.1f MiB", float64(cr.n.Load())/(1<<20))
			if cr.eof.Load() {
				if st, err := c.ImportStatus(ctx, id); err == nil && st.Batches > 0 {
					line += fmt.Sprintf("; batches written %d of %d", st.BatchesWritten, st.Batches)
				} else {
					line += "; authzd is validating"
				}
			}
			fmt.Fprintf(f, "\r%-60s", line)
		}
	}()
	return func() { close(done); <-finished }
}

type countingReader struct {
	r   io.Reader
	n   atomic.Int64
	eof atomic.Bool
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	if err == io.EOF {
		c.eof.Store(true)
	}
	return n, err
}

func exportCmd() *command {
	var tenant string
	return &command{
		name: "export", nargs: 0,
		summary: "Write authzd's provisioning state to standard output as a record document.",
		help: `Every partner, super admin, partner admin, tenant, role, member and resource at one
revision, one JSON record a line, ids sorted: authzctl import takes it back. The revision's zed
token goes to standard error.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&tenant, "tenant", "", "export only this tenant (and its partner record)")
		},
		run: func(ctx context.Context, e *env, c *client.Client, _ []string) error {
			token, err := c.Export(ctx, e.stdout, tenant)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(e.stderr, "zed token:", token)
			return err
		},
	}
}

func shadowReportCmd() *command {
	var since, until, tenant string
	var limit int
	return &command{
		name: "shadow-report", args: "--since <when>", nargs: 0,
		summary: "Compare the legacy answers sent with checks to authzd's; exit 1 on any disagreement.",
		help: `--since and --until take a date (2026-05-01, midnight UTC), an RFC 3339 time or a
duration back from now (24h). Needs the audit:read scope.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&since, "since", "", "checks at or after this time (required)")
			fs.StringVar(&until, "until", "", "checks before this time (default now)")
			fs.StringVar(&tenant, "tenant", "", "only this tenant")
			fs.IntVar(&limit, "limit", 0, "disagreement groups listed (authzd's default 100)")
		},
		run: func(ctx context.Context, e *env, c *client.Client, _ []string) error {
			if since == "" {
				return usagef("--since is required")
			}
			now := time.Now()
			q := client.ShadowQuery{TenantID: tenant, Limit: limit}
			var err error
			if q.Since, err = parseWhen("since", since, now); err != nil {
				return err
			}
			if q.Until, err = parseWhen("until", until, now); err != nil {
				return err
			}
			r, err := c.ShadowReport(ctx, q)
			if err != nil {
				return err
			}
			if e.json {
				err = printJSON(e, r)
			} else {
				err = printShadow(e, r)
			}
			if err == nil && len(r.Disagreements) > 0 {
				return errDenied
			}
			return err
		},
	}
}

func printShadow(e *env, r client.ShadowReport) error {
	fmt.Fprintf(e.stdout, "%d shadowed checks, %d agreed, %d disagreed\n", r.Checks, r.Agreed, r.Checks-r.Agreed)
	if len(r.Disagreements) == 0 {
		return nil
	}
	t := newTable(e.stdout, "COUNT", "TENANT", "PERMISSION", "LEGACY", "AUTHZD", "FIRST", "LAST", "EXAMPLES")
	for _, d := range r.Disagreements {
		t.row(fmt.Sprint(d.Count), d.TenantID, d.Permission, allowedWord(d.LegacyAllowed), allowedWord(d.Allowed),
			formatTime(d.FirstAt), formatTime(d.LastAt), strings.Join(d.Examples, ","))
	}
	return t.flush()
}

func allowedWord(b bool) string {
	if b {
		return "allowed"
	}
	return "denied"
}
