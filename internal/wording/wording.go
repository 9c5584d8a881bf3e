// Package wording finds development-diary wording in the product's text: work
// periods counted by ordinals ("the ninth session", "tenth pass"), benchmark runs
// named by letters ("run J", "runs M-R") and issue numbers. The history of how
// something was found belongs in git; code, docs and the changelog say what holds.
package wording

import (
	"regexp"
	"slices"
	"strings"
)

// A Finding is one diary phrase on a line.
type Finding struct {
	Line   int    // 1-based line number
	Phrase string // the matched text
	Rule   string // which rule it breaks
}

type rule struct {
	name string
	re   *regexp.Regexp
	// not, when set, rejects a match by the text that follows it.
	not func(rest string) bool
}

var rules = []rule{
	{
		name: "ordinal work period",
		re: regexp.MustCompile(`(?i)\b(first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|` +
			`thirteenth|fourteenth|fifteenth|\d+(?:st|nd|rd|th))[- ](session|pass|work period|sprint|iteration)s?\b`),
	},
	{
		name: "work period",
		re:   regexp.MustCompile(`(?i)\b(same|previous|next|earlier|later|this|that|last) (session|work period)\b|\bsession's (reading|numbers|runs|VM|machine)\b`),
	},
	{
		name: "lettered run",
		re:   regexp.MustCompile(`\b[Rr]uns? [A-Z][A-Z0-9]?(?:[-–][A-Z][A-Z0-9]?)?\b`),
		// "runs N times" names a count, not a run.
		not: func(rest string) bool { return strings.HasPrefix(rest, " times") },
	},
	{
		name: "issue number",
		re:   regexp.MustCompile(`(?i)\b(issues?|tickets?) ?#?\d+\b|Issue_?\d+`),
	},
}

// Find reports the diary phrases in text. A phrase may be wrapped across two
// lines ("the ninth\npass"); it is reported on the line where it starts.
func Find(text string) []Finding {
	// Newlines become blanks of the same length, so offsets still map to lines.
	flat := strings.ReplaceAll(text, "\n", " ")
	var out []Finding
	for _, r := range rules {
		for _, loc := range r.re.FindAllStringIndex(flat, -1) {
			if r.not != nil && r.not(flat[loc[1]:]) {
				continue
			}
			out = append(out, Finding{
				Line:   strings.Count(text[:loc[0]], "\n") + 1,
				Phrase: text[loc[0]:loc[1]],
				Rule:   r.name,
			})
		}
	}
	slices.SortStableFunc(out, func(a, b Finding) int { return a.Line - b.Line })
	return out
}
