// Package tracking records which symbols users care about: the work behind the
// sync-user-symbols function and the SymbolSyncService RPCs. It validates and normalises a
// request, then writes user_symbol_tracking in one transaction. It never writes job
// definitions: the replicator derives those from the tracking rows.
package tracking

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/symbolsync/backfill/market"
)

var (
	//go:embed sql/ensure_symbols.sql
	ensureSymbolsSQL string
	//go:embed sql/upsert_tracking.sql
	upsertTrackingSQL string
	//go:embed sql/untrack.sql
	untrackSQL string
	//go:embed sql/list_tracked.sql
	listTrackedSQL string
)

// Limits on one request.
const (
	MaxSymbols      = 100
	MaxSymbolLength = 16
)

// Timeframes returns the timeframes in their canonical order, as stored.
func Timeframes() []string { return market.Names(market.Timeframes()) }

// DefaultTimeframes returns what a request without timeframes tracks.
func DefaultTimeframes() []string { return market.Names(market.DefaultTimeframes()) }

// sourcePriority maps a source to its priority (higher is fetched first).
func sourcePriority(source string) (int, bool) {
	switch source {
	case "watchlist":
		return 300, true
	case "chart_view":
		return 200, true
	case "recent_search":
		return 100, true
	}
	return 0, false
}

// ErrUnknownUser means the caller's user id is not (or no longer) in auth.users.
var ErrUnknownUser = errors.New("user does not exist")

// InvalidError is a request the caller must fix. Message is safe to show and, where the
// original function had one, is its exact message.
type InvalidError struct{ Message string }

func (e *InvalidError) Error() string { return e.Message }

func invalid(format string, args ...any) error {
	return &InvalidError{Message: fmt.Sprintf(format, args...)}
}

// SyncRequest is the body of sync-user-symbols.
type SyncRequest struct {
	Symbols    []string
	Source     string
	Timeframes []string
}

// SyncResult is what sync-user-symbols answers.
type SyncResult struct {
	// SymbolsTracked counts the distinct symbols now tracked for the caller.
	SymbolsTracked int
	// SymbolsRequested is the length of the request's symbols, duplicates included.
	SymbolsRequested int
	// Timeframes counts the distinct timeframes requested.
	Timeframes int
	// JobsUpdated is SymbolsTracked × Timeframes: the (symbol, timeframe) pairs whose backfill
	// the request asks for. The replicator derives the job definitions from them.
	JobsUpdated int
	Priority    int
	Source      string
}

// UntrackRequest removes the caller's interest in symbols from one source.
type UntrackRequest struct {
	Symbols []string
	Source  string
}

// UntrackResult is what an untrack answers.
type UntrackResult struct {
	// SymbolsUntracked counts the tracking rows removed.
	SymbolsUntracked int
	SymbolsRequested int
	Source           string
}

// Tracked is one of the caller's tracking rows with its progress.
type Tracked struct {
	Symbol      string
	Source      string
	Priority    int
	TrackedAt   time.Time
	Timeframes  []string
	Bars        map[string]int // by timeframe
	JobsPending int
	JobsRunning int
}

// Store reads and writes tracking rows.
type Store struct {
	db *pgxpool.Pool
}

// NewStore returns a Store on db.
func NewStore(db *pgxpool.Pool) *Store { return &Store{db: db} }

// Sync records the caller's interest in req's symbols. userID is the caller's auth.users id, or
// "" for anonymous interest (shared by every anonymous caller). Invalid requests return an
// *InvalidError and write nothing.
func (s *Store) Sync(ctx context.Context, userID string, req SyncRequest) (SyncResult, error) {
	symbols, err := NormalizeSymbols(req.Symbols)
	if err != nil {
		return SyncResult{}, err
	}
	priority, err := ParseSource(req.Source)
	if err != nil {
		return SyncResult{}, err
	}
	timeframes, err := NormalizeTimeframes(req.Timeframes)
	if err != nil {
		return SyncResult{}, err
	}
	err = pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, ensureSymbolsSQL, symbols); err != nil {
			return fmt.Errorf("create symbols: %w", err)
		}
		if _, err := tx.Exec(ctx, upsertTrackingSQL, nullable(userID), req.Source, priority, timeframes, symbols); err != nil {
			return fmt.Errorf("upsert tracking: %w", err)
		}
		return nil
	})
	if err != nil {
		return SyncResult{}, userError(err)
	}
	return SyncResult{
		SymbolsTracked:   len(symbols),
		SymbolsRequested: len(req.Symbols),
		Timeframes:       len(timeframes),
		JobsUpdated:      len(symbols) * len(timeframes),
		Priority:         priority,
		Source:           req.Source,
	}, nil
}

// Untrack removes the caller's interest in req's symbols from req.Source. For an anonymous
// caller ("" userID) that is the shared anonymous interest.
func (s *Store) Untrack(ctx context.Context, userID string, req UntrackRequest) (UntrackResult, error) {
	symbols, err := NormalizeSymbols(req.Symbols)
	if err != nil {
		return UntrackResult{}, err
	}
	if _, err := ParseSource(req.Source); err != nil {
		return UntrackResult{}, err
	}
	tag, err := s.db.Exec(ctx, untrackSQL, nullable(userID), req.Source, symbols)
	if err != nil {
		return UntrackResult{}, fmt.Errorf("delete tracking: %w", err)
	}
	return UntrackResult{
		SymbolsUntracked: int(tag.RowsAffected()),
		SymbolsRequested: len(req.Symbols),
		Source:           req.Source,
	}, nil
}

// List returns the caller's tracking rows, highest priority first.
func (s *Store) List(ctx context.Context, userID string) ([]Tracked, error) {
	rows, err := s.db.Query(ctx, listTrackedSQL, nullable(userID))
	if err != nil {
		return nil, fmt.Errorf("list tracked symbols: %w", err)
	}
	var out []Tracked
	var (
		t                   Tracked
		m15, h1, h4, d1, w1 int
		pending, running    int64
	)
	_, err = pgx.ForEachRow(rows, []any{&t.Symbol, &t.Source, &t.Priority, &t.TrackedAt, &t.Timeframes,
		&m15, &h1, &h4, &d1, &w1, &pending, &running}, func() error {
		row := t
		row.Bars = map[string]int{"m15": m15, "h1": h1, "h4": h4, "d1": d1, "w1": w1}
		row.JobsPending, row.JobsRunning = int(pending), int(running)
		out = append(out, row)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list tracked symbols: %w", err)
	}
	return out, nil
}

// symbolPattern: letters, digits, '.', '-' and '/', starting with a letter or digit.
var symbolPattern = regexp.MustCompile(`^[A-Z0-9][A-Z0-9./-]*$`)

// NormalizeSymbols trims, upper-cases and de-duplicates tickers (keeping first-seen order) and
// validates each.
func NormalizeSymbols(in []string) ([]string, error) {
	if len(in) == 0 {
		return nil, invalid("No symbols provided")
	}
	if len(in) > MaxSymbols {
		return nil, invalid("Too many symbols: %d (at most %d per request)", len(in), MaxSymbols)
	}
	out := make([]string, 0, len(in))
	for _, raw := range in {
		sym := strings.ToUpper(strings.TrimSpace(raw))
		switch {
		case sym == "":
			return nil, invalid("Invalid symbol: empty")
		case len(sym) > MaxSymbolLength:
			return nil, invalid("Invalid symbol %q: longer than %d characters", truncate(raw, 24), MaxSymbolLength)
		case !symbolPattern.MatchString(sym):
			return nil, invalid("Invalid symbol %q: use letters, digits, '.', '-' or '/'", truncate(raw, 24))
		}
		if !slices.Contains(out, sym) {
			out = append(out, sym)
		}
	}
	return out, nil
}

// ParseSource returns the priority of a source, or the original function's error.
func ParseSource(source string) (int, error) {
	p, ok := sourcePriority(source)
	if !ok {
		return 0, invalid("Invalid source. Must be: watchlist, recent_search, or chart_view")
	}
	return p, nil
}

// NormalizeTimeframes validates timeframes and returns them de-duplicated in canonical order;
// none means DefaultTimeframes().
func NormalizeTimeframes(in []string) ([]string, error) {
	if len(in) == 0 {
		return DefaultTimeframes(), nil
	}
	seen := map[string]bool{}
	for _, raw := range in {
		tf := strings.ToLower(strings.TrimSpace(raw))
		if !slices.Contains(Timeframes(), tf) {
			return nil, invalid("Invalid timeframe %q. Must be one of: %s", truncate(raw, 24), strings.Join(Timeframes(), ", "))
		}
		seen[tf] = true
	}
	var out []string
	for _, tf := range Timeframes() {
		if seen[tf] {
			out = append(out, tf)
		}
	}
	return out, nil
}

func truncate(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// nullable maps the anonymous caller to SQL NULL.
func nullable(userID string) any {
	if userID == "" {
		return nil
	}
	return userID
}

// userError recognises a caller whose user row vanished after authentication (the foreign key
// on user_id fails).
func userError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23503" && pgErr.ConstraintName == "user_symbol_tracking_user_id_fkey" {
		return fmt.Errorf("%w: %w", ErrUnknownUser, err)
	}
	return err
}
