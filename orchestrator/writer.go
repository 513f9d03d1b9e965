package orchestrator

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

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
func Write(ctx context.Context, db DB, now time.Time, run Run, f Fetched) (written int64, err error) {
	got, err := WriteBatch(ctx, db, now, f.Provider, []Result{{Run: run, Fetched: f}})
	if err != nil {
		return 0, err
	}
	n, ok := got[run.ID]
	if !ok {
		return 0, fmt.Errorf("write run %s: %w", run.ID, ErrLeaseLost)
	}
	return n, nil
}

// Result is one finished run of a batch and what its fetch brought.
type Result struct {
	Run     Run
	Fetched Fetched
}

// WriteBatch stores finished runs of one timeframe, leased to one owner, fetched from provider,
// with one statement (sql/write.sql): for each its bars, its covered range and its success, as
// Write does for one. The runs must be of distinct symbols. It returns, per run recorded, the
// number of its bar rows inserted or changed; a run missing from the answer had lost its lease
// and nothing of it was written.
//
// The bars travel as arrays rather than through COPY into a staging table: one statement
// instead of five, and no temporary table created and dropped per batch.
func WriteBatch(ctx context.Context, db DB, now time.Time, provider string, results []Result) (map[string]int64, error) {
	if len(results) == 0 {
		return map[string]int64{}, nil
	}
	tf := results[0].Run.Timeframe
	owner := results[0].Run.Owner
	n := len(results)
	ids, symbols, symbolIDs := make([]string, n), make([]string, n), make([]string, n)
	attempts := make([]int32, n)
	from, to := make([]time.Time, n), make([]time.Time, n)
	until := make([]*time.Time, n)
	dirty := make([]bool, n)
	var runOf []int32
	var ts []time.Time
	var open, high, low, closes, volume []float64
	seen := make(map[string]bool, n)
	for i, res := range results {
		r := res.Run
		if r.Timeframe != tf || r.Owner != owner {
			return nil, fmt.Errorf("write batch: run %s is %s of %q, the batch %s of %q", r.ID, r.Timeframe, r.Owner, tf, owner)
		}
		if seen[r.SymbolID] {
			return nil, fmt.Errorf("write batch: symbol %s appears twice", r.Symbol)
		}
		seen[r.SymbolID] = true
		fetch := r.Fetch
		if fetch.From.IsZero() {
			fetch = r.Slice
		}
		ids[i], symbols[i], symbolIDs[i], attempts[i] = r.ID, r.Symbol, r.SymbolID, int32(r.Attempt)
		from[i], to[i], until[i], dirty[i] = fetch.From, fetch.To, at(res.Fetched.Until), !res.Fetched.InSession
		for _, b := range barsIn(res.Fetched.Bars, fetch) {
			runOf = append(runOf, int32(i+1))
			ts = append(ts, b.TS)
			open, high, low = append(open, b.Open), append(high, b.High), append(low, b.Low)
			closes, volume = append(closes, b.Close), append(volume, b.Volume)
		}
	}
	rows, err := db.Query(ctx, writeSQL, ids, owner, attempts, symbols, string(tf), symbolIDs, provider,
		from, to, until, runOf, ts, open, high, low, closes, volume, dirty, at(now))
	if err != nil {
		return nil, fmt.Errorf("write %d runs: %w", n, err)
	}
	out := make(map[string]int64, n)
	var id string
	var written int64
	if _, err := pgx.ForEachRow(rows, []any{&id, &written}, func() error {
		out[id] = written
		return nil
	}); err != nil {
		return nil, fmt.Errorf("write %d runs: %w", n, err)
	}
	return out, nil
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
