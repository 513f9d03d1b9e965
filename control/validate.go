package control

import (
	"slices"
	"strings"

	"github.com/symbolsync/backfill/market"
)

// timeframes are the timeframes in their canonical order, as stored.
func timeframes() []string { return market.Names(market.Timeframes()) }

// statuses are the states of a job run, as stored.
func statuses() []string { return []string{"queued", "running", "success", "failed", "cancelled"} }

// Limits of a request.
const (
	// MaxSymbolLength is the longest ticker symbols.ticker accepts.
	MaxSymbolLength = 32
	// DefaultPageSize is the page size of a list request that gives none.
	DefaultPageSize = 100
	// MaxPageSize is the largest page a list request may ask for.
	MaxPageSize = 1000
	// MaxWindowDays and MinWindowDays bound a definition's window (the table's CHECK).
	MinWindowDays, MaxWindowDays = 1, 36500
	// MinPriority and MaxPriority bound a definition's priority (the table's CHECK).
	MinPriority, MaxPriority = 0, 1000
)

// normalizeSymbol trims and upper-cases a ticker, as the sync path stores them; "" stays "".
func normalizeSymbol(field, s string) (string, error) {
	sym := strings.ToUpper(strings.TrimSpace(s))
	if len(sym) > MaxSymbolLength {
		return "", invalid(field, "%s is longer than %d characters", field, MaxSymbolLength)
	}
	return sym, nil
}

// checkTimeframe accepts "" (any) or one of timeframes.
func checkTimeframe(field, tf string) error {
	if tf == "" || slices.Contains(timeframes(), tf) {
		return nil
	}
	return invalid(field, "%s %q is not one of %s", field, tf, strings.Join(timeframes(), ", "))
}

// pageSize applies the default and the bounds of a list request's page size.
func pageSize(n int) (int, error) {
	switch {
	case n == 0:
		return DefaultPageSize, nil
	case n < 0 || n > MaxPageSize:
		return 0, invalid("page_size", "page_size must be between 1 and %d (0 means %d), got %d", MaxPageSize, DefaultPageSize, n)
	}
	return n, nil
}

// parseUUID returns s in canonical lower-case form if it is a UUID in the 8-4-4-4-12 hex form.
func parseUUID(field, s string) (string, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return "", invalid(field, "%s is required (a UUID such as 6f1c3a52-3d0e-4c1b-9a53-1c2d3e4f5a6b)", field)
	}
	ok := len(t) == 36
	for i := 0; ok && i < len(t); i++ {
		c := t[i]
		switch i {
		case 8, 13, 18, 23:
			ok = c == '-'
		default:
			ok = '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
		}
	}
	if !ok {
		return "", invalid(field, "%s %q is not a UUID (want the 8-4-4-4-12 hex form, e.g. 6f1c3a52-3d0e-4c1b-9a53-1c2d3e4f5a6b)", field, truncate(s, 40))
	}
	return strings.ToLower(t), nil
}

func truncate(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
