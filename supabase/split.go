package supabase

import (
	"strings"
	"unicode"
)

// SplitStatements cuts a SQL script into its statements, as the Supabase CLI stores them in
// schema_migrations.statements: split at semicolons outside quotes, dollar quotes and comments,
// trimmed, without the terminating semicolon, empty statements dropped.
func SplitStatements(script string) []string {
	var (
		out   []string
		start int
	)
	emit := func(end int) {
		if stmt := strings.TrimSpace(script[start:end]); stmt != "" {
			out = append(out, stmt)
		}
	}
	for i := 0; i < len(script); {
		c := script[i]
		switch {
		case c == '-' && strings.HasPrefix(script[i:], "--"):
			if nl := strings.IndexByte(script[i:], '\n'); nl >= 0 {
				i += nl + 1
			} else {
				i = len(script)
			}
		case c == '/' && strings.HasPrefix(script[i:], "/*"):
			i = skipBlockComment(script, i)
		case c == '\'':
			// E'...' strings allow backslash escapes; standard strings only ''.
			escapes := i > 0 && (script[i-1] == 'E' || script[i-1] == 'e')
			i = skipQuoted(script, i, '\'', escapes)
		case c == '"':
			i = skipQuoted(script, i, '"', false)
		case c == '$':
			if tag, ok := dollarTag(script[i:]); ok {
				if end := strings.Index(script[i+len(tag):], tag); end >= 0 {
					i += len(tag) + end + len(tag)
				} else {
					i = len(script)
				}
			} else {
				i++
			}
		case c == ';':
			emit(i)
			i++
			start = i
		default:
			i++
		}
	}
	emit(len(script))
	return out
}

// skipBlockComment returns the index after the comment that starts at i; block comments nest.
func skipBlockComment(s string, i int) int {
	depth := 0
	for i < len(s) {
		switch {
		case strings.HasPrefix(s[i:], "/*"):
			depth++
			i += 2
		case strings.HasPrefix(s[i:], "*/"):
			depth--
			i += 2
			if depth == 0 {
				return i
			}
		default:
			i++
		}
	}
	return i
}

// skipQuoted returns the index after the quoted text that starts at i. A doubled quote is an
// escaped quote.
func skipQuoted(s string, i int, quote byte, backslash bool) int {
	for i++; i < len(s); i++ {
		switch {
		case backslash && s[i] == '\\':
			i++
		case s[i] == quote:
			if i+1 < len(s) && s[i+1] == quote {
				i++
				continue
			}
			return i + 1
		}
	}
	return i
}

// dollarTag reports the dollar-quote opener ($$ or $tag$) at the start of s. A $ followed by a
// digit is a parameter ($1), not a quote.
func dollarTag(s string) (string, bool) {
	for j := 1; j < len(s); j++ {
		c := rune(s[j])
		if c == '$' {
			return s[:j+1], true
		}
		if !(c == '_' || unicode.IsLetter(c) || (j > 1 && unicode.IsDigit(c))) {
			return "", false
		}
	}
	return "", false
}

// fingerprint reduces SQL to what survives any statement splitting: no comments, no white space
// and no semicolons. Two scripts with equal fingerprints are the same migration even if another
// tool split, trimmed or stripped them.
func fingerprint(sql string) string {
	var b strings.Builder
	b.Grow(len(sql))
	for _, r := range stripComments(sql) {
		if r == ';' || unicode.IsSpace(r) {
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// stripComments drops -- and /* */ comments that stand outside quoted text.
func stripComments(script string) string {
	var b strings.Builder
	for i := 0; i < len(script); {
		c := script[i]
		next := i + 1
		switch {
		case c == '-' && strings.HasPrefix(script[i:], "--"):
			if nl := strings.IndexByte(script[i:], '\n'); nl >= 0 {
				i += nl
			} else {
				i = len(script)
			}
			continue
		case c == '/' && strings.HasPrefix(script[i:], "/*"):
			i = skipBlockComment(script, i)
			continue
		case c == '\'':
			next = skipQuoted(script, i, '\'', i > 0 && (script[i-1] == 'E' || script[i-1] == 'e'))
		case c == '"':
			next = skipQuoted(script, i, '"', false)
		case c == '$':
			if tag, ok := dollarTag(script[i:]); ok {
				if end := strings.Index(script[i+len(tag):], tag); end >= 0 {
					next = i + len(tag) + end + len(tag)
				} else {
					next = len(script)
				}
			}
		}
		b.WriteString(script[i:next])
		i = next
	}
	return b.String()
}
