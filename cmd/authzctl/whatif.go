package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"time"

	"github.com/scailabs/authzd/client"
)

func whatifCmd() *command {
	var changesFile, since, until, consistencyToken string
	var failOnFlips bool
	return &command{
		name: "whatif", args: "<tenant_id> --changes FILE --since WHEN", nargs: 1,
		summary: "Predict which of a tenant's past decisions proposed changes would turn around; writes nothing.",
		help: `FILE (or "-" for standard input) holds the changes: records of the import's format, each with
"op" ("put" or "delete"), one JSON object a line or one JSON array, applied in order, e.g.
  {"op":"delete","kind":"member","tenant_id":"t1","role_id":"ops","user_id":"alice"}
  {"op":"put","kind":"role","tenant_id":"t1","role_id":"ops","name":"ops","module_permissions":["scaibunker:create"]}
The questions are the tenant's decisions between --since and --until (default now): a date, an
RFC 3339 time or a duration back from now (168h). A refused change is reported as FILE:LINE.
The token needs the check and audit:read scopes. --fail-on-flips exits 1 when anything flips.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&changesFile, "changes", "", "file of change records (- for standard input)")
			fs.StringVar(&since, "since", "", "start of the window of past decisions")
			fs.StringVar(&until, "until", "", "end of the window (default now)")
			fs.StringVar(&consistencyToken, "consistency-token", "", "predict at least as fresh as this write")
			fs.BoolVar(&failOnFlips, "fail-on-flips", false, "exit 1 when any decision flips")
		},
		run: func(ctx context.Context, e *env, c *client.Client, a []string) error {
			if changesFile == "" {
				return usagef("--changes is required")
			}
			if since == "" {
				return usagef("--since is required")
			}
			now := time.Now()
			req := client.WhatIfRequest{TenantID: a[0], ConsistencyToken: consistencyToken}
			var err error
			if req.Since, err = parseWhen("since", since, now); err != nil {
				return err
			}
			if req.Until, err = parseWhen("until", until, now); err != nil {
				return err
			}
			name := changesFile
			var in io.Reader = os.Stdin
			if name == "-" {
				name = "<stdin>"
			} else {
				f, err := os.Open(name)
				if err != nil {
					return usagef("%v", err)
				}
				defer f.Close()
				in = f
			}
			changes, lines, err := readChanges(name, in)
			if err != nil {
				return err
			}
			req.Changes = changes
			res, err := c.WhatIf(ctx, req)
			if err != nil {
				return atLine(name, lines, err)
			}
			if e.json {
				if err := printJSON(e, res); err != nil {
					return err
				}
			} else if err := printWhatIf(e, res); err != nil {
				return err
			}
			if failOnFlips && len(res.Flips) > 0 {
				return errDenied
			}
			return nil
		},
	}
}

// readChanges reads change records: one JSON array, or one JSON object a
// line. It returns each record with the line it starts on.
func readChanges(name string, in io.Reader) ([]json.RawMessage, []int, error) {
	data, err := io.ReadAll(in)
	if err != nil {
		return nil, nil, err
	}
	lineAt := func(off int64) int { return bytes.Count(data[:off], []byte("\n")) + 1 }
	trimmed := bytes.TrimSpace(data)
	var out []json.RawMessage
	var lines []int
	if len(trimmed) > 0 && trimmed[0] == '[' {
		dec := json.NewDecoder(bytes.NewReader(data))
		if _, err := dec.Token(); err != nil {
			return nil, nil, fmt.Errorf("%s: not a JSON array: %v", name, err)
		}
		for dec.More() {
			start := dec.InputOffset()
			for start < int64(len(data)) && bytes.IndexByte([]byte(" \t\r\n,"), data[start]) >= 0 {
				start++
			}
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return nil, nil, fmt.Errorf("%s:%d: not valid JSON: %v", name, lineAt(start), err)
			}
			if len(raw) == 0 || raw[0] != '{' {
				return nil, nil, fmt.Errorf("%s:%d: a change must be a JSON object", name, lineAt(start))
			}
			out, lines = append(out, raw), append(lines, lineAt(start))
		}
		if _, err := dec.Token(); err != nil {
			return nil, nil, fmt.Errorf("%s: the JSON array does not end: %v", name, err)
		}
		return out, lines, nil
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if !json.Valid(line) || line[0] != '{' {
			return nil, nil, fmt.Errorf("%s:%d: not a JSON object", name, n)
		}
		out, lines = append(out, json.RawMessage(bytes.Clone(line))), append(lines, n)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("%s: %v", name, err)
	}
	return out, lines, nil
}

var changeIndex = regexp.MustCompile(`^changes\[(\d+)\](?:: |\.)`)

// atLine reports authzd's refusal of changes[i] as FILE:LINE of that change.
func atLine(name string, lines []int, err error) error {
	var ae *client.Error
	if !errors.As(err, &ae) {
		return err
	}
	m := changeIndex.FindStringSubmatch(ae.Message)
	if m == nil {
		return err
	}
	i, _ := strconv.Atoi(m[1])
	if i >= len(lines) {
		return err
	}
	return fmt.Errorf("%s:%d: %s", name, lines[i], ae.Message[len(m[0]):])
}

func printWhatIf(e *env, res client.WhatIfResult) error {
	fmt.Fprintf(e.stdout, "%d flips in %d questions, predicted at %s\n", len(res.Flips), res.Questions, res.ZedToken)
	if res.Skipped > 0 {
		fmt.Fprintf(e.stdout, "%d questions skipped: their key or resource type is no longer in the schema\n", res.Skipped)
	}
	if len(res.Flips) == 0 {
		return nil
	}
	t := newTable(e.stdout, "USER", "PERMISSION", "RESOURCE", "FROM", "TO", "DECISIONS", "LAST-DECIDED")
	for _, f := range res.Flips {
		resource := ""
		if f.Resource != nil {
			resource = f.Resource.Type + ":" + f.Resource.ID
		}
		t.row(f.UserID, f.Permission, resource, f.From, f.To, strconv.FormatInt(f.Decisions, 10), formatTime(f.LastDecidedAt))
	}
	return t.flush()
}
