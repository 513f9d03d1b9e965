package orchestrator

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/symbolsync/backfill/orchestrator/marketdata"
)

// Fetched is the outcome of fetching one run's slice.
type Fetched struct {
	Provider string           // stored as ohlc_bars_v2.provider and job_runs.provider
	Bars     []marketdata.Bar // bars outside run.Fetch are dropped; of a repeated TS the last is written
	// Until is when the fetch started: run.Fetch counts as covered up to min(its end, Until),
	// so an open slice is not marked covered beyond what could exist. Zero means the run's
	// claim (started_at), which came just before the fetch, on the same clock.
	Until time.Time
	// InSession reports that the fetch holds no ended session's last bar (a refresh inside a
	// trading session): then the write does not ask the completeness check to look at the
	// definition again, which it would otherwise do after every refresh of every definition.
	// The session is judged once the write that holds its last bar comes. Default false: look.
	InSession bool
}

// Write stores a finished slice with one statement (sql/write.sql), so atomically and in one
// round trip: the bars, upserted so that only rows whose values differ change, the covered
// range in coverage_status, and the run's success with rows_written. Nothing is written when
// the run is no longer leased to run.Owner at run.Attempt: that returns ErrLeaseLost. It
// returns the number of bar rows inserted or changed. now stamps the write (fetched_at,
// last_success_at, finished_at); a zero now is the database clock.
//
// The bars travel as six arrays rather than through COPY into a staging table: one statement
// instead of five, and no temporary table created and dropped per run.
func Write(ctx context.Context, db DB, now time.Time, run Run, f Fetched) (written int64, err error) {
	fetch := run.Fetch
	if fetch.From.IsZero() {
		fetch = run.Slice
	}
	bars := barsIn(f.Bars, fetch)
	n := len(bars)
	ts := make([]time.Time, n)
	open, high, low, closes, volume := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	for i, b := range bars {
		ts[i], open[i], high[i], low[i], closes[i], volume[i] = b.TS, b.Open, b.High, b.Low, b.Close, b.Volume
	}
	var marked int64
	if err := db.QueryRow(ctx, writeSQL, run.ID, run.Owner, run.Attempt,
		run.Symbol, string(run.Timeframe), run.SymbolID, f.Provider,
		fetch.From, fetch.To, at(f.Until),
		ts, open, high, low, closes, volume, at(now), !f.InSession).Scan(&marked, &written); err != nil {
		return 0, fmt.Errorf("write run %s: %w", run.ID, err)
	}
	if marked == 0 {
		return 0, fmt.Errorf("write run %s: %w", run.ID, ErrLeaseLost)
	}
	return written, nil
}

// barsIn returns the bars inside r sorted by TS, the last of a repeated TS kept. Providers
// promise that already; one that breaks the promise must not write outside the range the run
// covers, nor make the upsert meet the same key twice.
func barsIn(in []marketdata.Bar, r Slice) []marketdata.Bar {
	out := make([]marketdata.Bar, 0, len(in))
	for _, b := range in {
		if !b.TS.Before(r.From) && b.TS.Before(r.To) {
			out = append(out, b)
		}
	}
	if !slices.IsSortedFunc(out, func(a, b marketdata.Bar) int { return a.TS.Compare(b.TS) }) {
		slices.SortStableFunc(out, func(a, b marketdata.Bar) int { return a.TS.Compare(b.TS) })
	}
	// Keep the last of each run of equal TS.
	k := 0
	for i := range out {
		if k > 0 && out[k-1].TS.Equal(out[i].TS) {
			out[k-1] = out[i]
			continue
		}
		out[k] = out[i]
		k++
	}
	return out[:k]
}
