package rag

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/store"
)

// MaxQueryBytes bounds a search query.
const MaxQueryBytes = 1000

// ParseQuery checks a user's search query and returns its terms, at most
// DefaultMaxTerms of them (Searcher.ParseQuery applies the configured limit).
// Only letters, digits and marks make terms; every other character (quotes,
// '*', '%', parentheses, NEAR, '-'…) only separates them, so no query can
// reach the index as syntax. Every error is a *job.ValidationError of field
// "q".
func ParseQuery(q string) ([]string, error) { return parseQuery(q, DefaultMaxTerms) }

// parseQuery is ParseQuery with a limit on the distinct terms: a query with
// more is refused rather than cut, so that its author knows which words were
// searched for.
func parseQuery(q string, maxTerms int) ([]string, error) {
	if !utf8.ValidString(q) {
		return nil, &job.ValidationError{Field: "q", Message: "is not valid UTF-8"}
	}
	if len(q) > MaxQueryBytes {
		return nil, &job.ValidationError{Field: "q", Message: "is longer than 1000 bytes"}
	}
	if strings.TrimSpace(q) == "" {
		return nil, &job.ValidationError{Field: "q", Message: "is required"}
	}
	for _, r := range q {
		if unicode.IsControl(r) && r != '\t' && r != '\n' {
			return nil, &job.ValidationError{Field: "q", Message: "contains a control character"}
		}
	}
	terms := terms(q, nil, maxTerms+1)
	if len(terms) == 0 {
		return nil, &job.ValidationError{Field: "q", Message: "has no letters or digits to search for"}
	}
	if len(terms) > maxTerms {
		return nil, &job.ValidationError{Field: "q", Message: fmt.Sprintf("has more than %d terms; a search takes at most %d", maxTerms, maxTerms)}
	}
	return terms, nil
}

// Terms splits text into distinct lower-case search terms, in order, at most
// store.MaxSearchTerms of them. A Korean particle at the end of a word is cut
// off ("지수는" → "지수"), since the index matches substrings and the bare
// word is what the documents share.
func Terms(text string) []string { return terms(text, nil, store.MaxSearchTerms) }

// terms is Terms with a filter applied before a limit of its own.
func terms(text string, keep func(term string) bool, limit int) []string {
	var out []string
	seen := map[string]bool{}
	words := strings.FieldsFunc(norm.NFC.String(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsNumber(r) && !unicode.IsMark(r)
	})
	for _, w := range words {
		w = stripParticle(strings.ToLower(w))
		if seen[w] || (keep != nil && !keep(w)) {
			continue
		}
		seen[w] = true
		out = append(out, w)
		if len(out) == limit {
			break
		}
	}
	return out
}

// particles are Korean postpositions, longest first.
var particles = []string{"에서는", "으로는", "에게서", "이랑", "에서", "에게", "한테", "으로", "부터", "까지", "처럼",
	"보다", "하고", "은", "는", "이", "가", "을", "를", "에", "의", "와", "과", "도", "로", "만", "랑"}

func stripParticle(w string) string {
	last, _ := utf8.DecodeLastRuneInString(w)
	if !unicode.Is(unicode.Hangul, last) {
		return w
	}
	for _, p := range particles {
		if stem, ok := strings.CutSuffix(w, p); ok && utf8.RuneCountInString(stem) >= 2 {
			return stem
		}
	}
	return w
}

// stopwords are English words too common to find anything by.
var stopwords = map[string]bool{
	"the": true, "and": true, "for": true, "with": true, "that": true, "this": true, "from": true, "into": true,
	"are": true, "was": true, "were": true, "his": true, "her": true, "their": true, "they": true, "them": true,
	"she": true, "him": true, "has": true, "have": true, "had": true, "but": true, "not": true, "who": true,
	"what": true, "when": true, "where": true, "its": true, "our": true, "you": true, "your": true, "all": true,
}

// episodeTerms picks the terms to retrieve an episode's context by: the
// characters' names first (the most specific), then the title's and the
// synopsis's words, without one-letter words and English stopwords.
func episodeTerms(ep job.EpisodeData) []string {
	var b strings.Builder
	for _, c := range ep.Characters {
		b.WriteString(c.Name)
		b.WriteByte('\n')
	}
	b.WriteString(ep.Title)
	b.WriteByte('\n')
	b.WriteString(ep.Synopsis)
	return terms(b.String(), func(t string) bool { return utf8.RuneCountInString(t) >= 2 && !stopwords[t] }, store.MaxSearchTerms)
}
