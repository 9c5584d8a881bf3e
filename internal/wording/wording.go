// Package wording finds development-diary wording in the product's text: work
// periods counted by ordinals ("the ninth session", "tenth pass"), benchmark runs
// named by letters ("run J", "runs M-R") and issue numbers. The history of how
// something was found belongs in git; code, docs and the changelog say what holds.
package wording

import (
	"regexp"
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

// Find reports the diary phrases in text.
func Find(text string) []Finding {
	var out []Finding
	for i, line := range strings.Split(text, "\n") {
		for _, r := range rules {
			for _, loc := range r.re.FindAllStringIndex(line, -1) {
				if r.not != nil && r.not(line[loc[1]:]) {
					continue
				}
				out = append(out, Finding{Line: i + 1, Phrase: line[loc[0]:loc[1]], Rule: r.name})
			}
		}
	}
	return out
}
