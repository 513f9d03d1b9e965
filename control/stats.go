package control

import (
	"context"
	_ "embed"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

var (
	//go:embed sql/timeframe_job_stats.sql
	timeframeJobStatsSQL string
	//go:embed sql/symbol_coverage.sql
	symbolCoverageSQL string
	//go:embed sql/symbol_holes.sql
	symbolHolesSQL string
	//go:embed sql/tracked_symbols.sql
	trackedSymbolsSQL string
)

// MaxStatsHours bounds the look-back of TimeframeJobStats: ten years.
const MaxStatsHours = 10 * 365 * 24

// TimeframeJobStats is one row of public.get_timeframe_job_stats.
type TimeframeJobStats struct {
	Timeframe                                   string
	TotalJobs, Queued, Running, Success, Failed int64
	TotalBarsWritten                            int64
	AvgDurationSeconds                          *float64 // nil when no run succeeded in the window
}

// TimeframeJobStats returns the rows of public.get_timeframe_job_stats(hours): one per timeframe.
// hours 0 means 1.
func (s *Service) TimeframeJobStats(ctx context.Context, hours int) ([]TimeframeJobStats, error) {
	if hours == 0 {
		hours = 1
	}
	if hours < 1 || hours > MaxStatsHours {
		return nil, invalid("hours", "hours must be between 1 and %d (ten years), got %d", MaxStatsHours, hours)
	}
	rows, err := s.pool.Query(ctx, timeframeJobStatsSQL, hours)
	if err != nil {
		return nil, fmt.Errorf("get timeframe job stats: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (TimeframeJobStats, error) {
		var r TimeframeJobStats
		err := row.Scan(&r.Timeframe, &r.TotalJobs, &r.Queued, &r.Running, &r.Success, &r.Failed,
			&r.TotalBarsWritten, &r.AvgDurationSeconds)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("get timeframe job stats: %w", err)
	}
	return out, nil
}

// Coverage is one row of public.get_symbol_timeframe_coverage. Pointers are nil for SQL NULL.
type Coverage struct {
	Timeframe              string
	BarsCount              int64
	EarliestBar, LatestBar *time.Time
	CoverageDays           *float64
	LastFetch              *time.Time
	JobEnabled             *bool
	JobPriority            *int32
	// What the completeness check last found (nil until the definition was checked).
	SessionsExpected, SessionsFetched, SessionsComplete *int32
	Completeness                                        *float64
	CheckedAt                                           *time.Time
	// Holes are the definition's holes as last found, oldest session first.
	Holes []Hole
}

// Hole is a session that lacks its bars (a row of coverage_holes).
type Hole struct {
	SessionDate             string // YYYY-MM-DD
	From, To                time.Time
	Kind, State             string
	ExpectedBars, FoundBars int32
	Repairs                 int32
	Reason                  string
}

// SymbolCoverage returns the rows of public.get_symbol_timeframe_coverage(symbol): one per
// timeframe, none for an unknown ticker. The symbol is trimmed and upper-cased first, as the
// sync path stores tickers.
func (s *Service) SymbolCoverage(ctx context.Context, symbol string) ([]Coverage, error) {
	sym, err := normalizeSymbol("symbol", symbol)
	if err != nil {
		return nil, err
	}
	if sym == "" {
		return nil, invalid("symbol", "symbol is required, e.g. \"AAPL\"")
	}
	rows, err := s.pool.Query(ctx, symbolCoverageSQL, sym)
	if err != nil {
		return nil, fmt.Errorf("get coverage of %s: %w", sym, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Coverage, error) {
		var c Coverage
		err := row.Scan(&c.Timeframe, &c.BarsCount, &c.EarliestBar, &c.LatestBar, &c.CoverageDays, &c.LastFetch,
			&c.JobEnabled, &c.JobPriority, &c.SessionsExpected, &c.SessionsFetched, &c.SessionsComplete,
			&c.Completeness, &c.CheckedAt)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("get coverage of %s: %w", sym, err)
	}
	if len(out) == 0 {
		return out, nil
	}
	rows, err = s.pool.Query(ctx, symbolHolesSQL, sym)
	if err != nil {
		return nil, fmt.Errorf("get holes of %s: %w", sym, err)
	}
	byTF := map[string][]Hole{}
	var tf string
	var h Hole
	if _, err := pgx.ForEachRow(rows, []any{&tf, &h.SessionDate, &h.From, &h.To, &h.Kind, &h.State,
		&h.ExpectedBars, &h.FoundBars, &h.Repairs, &h.Reason}, func() error {
		byTF[tf] = append(byTF[tf], h)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("get holes of %s: %w", sym, err)
	}
	for i := range out {
		out[i].Holes = byTF[out[i].Timeframe]
	}
	return out, nil
}

// TrackedSymbol is one row of public.get_user_tracked_symbols_status.
type TrackedSymbol struct {
	Symbol, Source                          string
	Priority                                int32
	TrackedAt                               time.Time
	M15Bars, H1Bars, H4Bars, D1Bars, W1Bars int64
	JobsPending, JobsRunning                int64
}

// TrackedSymbols returns the rows of public.get_user_tracked_symbols_status(userID): the user's
// tracking rows with their bar and run counts; userID "" selects the anonymous interest.
func (s *Service) TrackedSymbols(ctx context.Context, userID string) ([]TrackedSymbol, error) {
	var id any // NULL: anonymous
	if userID != "" {
		u, err := parseUUID("user_id", userID)
		if err != nil {
			return nil, err
		}
		id = u
	}
	rows, err := s.pool.Query(ctx, trackedSymbolsSQL, id)
	if err != nil {
		return nil, fmt.Errorf("list tracked symbols: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (TrackedSymbol, error) {
		var t TrackedSymbol
		err := row.Scan(&t.Symbol, &t.Source, &t.Priority, &t.TrackedAt, &t.M15Bars, &t.H1Bars, &t.H4Bars,
			&t.D1Bars, &t.W1Bars, &t.JobsPending, &t.JobsRunning)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("list tracked symbols: %w", err)
	}
	return out, nil
}
