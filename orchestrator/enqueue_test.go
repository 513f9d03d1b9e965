package orchestrator

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/market"
	"github.com/symbolsync/backfill/orchestrator/marketdata"
	"github.com/symbolsync/backfill/supabase/pgtest"
)

// A fixed planning instant: a Thursday afternoon (the 7-day grid starts on Thursdays).
var planNow = ts("2026-11-26T15:07:00Z")

func TestEnqueueMatchesTheGrid(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	sizes := smallSizes()
	defs := map[market.Timeframe]def{}
	for _, tf := range market.Timeframes() {
		defs[tf] = addDef(t, pool, "AAPL", tf, 100, 400)
	}
	res, err := Enqueue(t.Context(), pool, planNow, sizes)
	require.NoError(t, err)
	total := 0
	for _, tf := range market.Timeframes() {
		want := Window(sizes[tf], 400, planNow)
		got := runsOf(t, pool, defs[tf].ID)
		require.Len(t, got, len(want), tf)
		for i := range want {
			require.True(t, want[i].From.Equal(got[i].From) && want[i].To.Equal(got[i].To), "%s slice %d: want %v, got %v..%v", tf, i, want[i], got[i].From, got[i].To)
			require.Equal(t, "queued", got[i].Status)
		}
		total += len(want)
	}
	require.Equal(t, EnqueueResult{Inserted: total}, res)
}

func TestEnqueueIsIdempotent(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	d := addDef(t, pool, "MSFT", market.M15, 100, 30)
	first, err := Enqueue(t.Context(), pool, planNow, smallSizes())
	require.NoError(t, err)
	before := runsOf(t, pool, d.ID)
	second, err := Enqueue(t.Context(), pool, planNow.Add(time.Minute), smallSizes())
	require.NoError(t, err)
	require.Equal(t, len(before), first.Inserted)
	require.Equal(t, EnqueueResult{}, second, "a second tick adds and re-queues nothing while runs are queued")
	require.Equal(t, stable(before), stable(runsOf(t, pool, d.ID)))

	var dupes int
	require.NoError(t, pool.QueryRow(t.Context(), `
SELECT count(*) FROM (SELECT 1 FROM job_runs GROUP BY job_def_id, slice_from, slice_to HAVING count(*) > 1) x`).Scan(&dupes))
	require.Zero(t, dupes)
}

func TestEnqueueSkipsDisabledDefinitions(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	d := addDef(t, pool, "IBM", market.H1, 100, 30)
	exec(t, pool, `UPDATE job_definitions SET enabled = false WHERE id = $1`, d.ID)
	res, err := Enqueue(t.Context(), pool, planNow, smallSizes())
	require.NoError(t, err)
	require.Equal(t, EnqueueResult{}, res)
	require.Empty(t, runsOf(t, pool, d.ID))
}

// Slices fetched with zero bars are covered: the next tick queues only the open slice again.
func TestEnqueueCoveredEvenIfEmpty(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	d := addDef(t, pool, "NVDA", market.M15, 100, 30)
	_, err := Enqueue(t.Context(), pool, planNow, smallSizes())
	require.NoError(t, err)
	runs := claimAll(t, pool, planNow, "w1")
	require.Len(t, runs, 6)
	writeAll(t, pool, runs, planNow)

	res, err := Enqueue(t.Context(), pool, planNow.Add(time.Minute), smallSizes())
	require.NoError(t, err)
	require.Equal(t, EnqueueResult{Refreshed: 1}, res, "only the open slice is fetched again")
	got := runsOf(t, pool, d.ID)
	for i, r := range got {
		if i == len(got)-1 {
			require.Equal(t, "queued", r.Status, "open slice")
			require.True(t, r.To.After(planNow))
			require.Zero(t, r.Attempt)
		} else {
			require.Equal(t, "success", r.Status, "closed covered slice %v", r.From)
		}
	}
}

// A running open slice is not touched; a slice fetched while open is fetched once more after it
// closes, and then never again.
func TestEnqueueOpenSliceLifecycle(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	sizes := smallSizes()
	d := addDef(t, pool, "TSLA", market.M15, 100, 7)
	_, err := Enqueue(t.Context(), pool, planNow, sizes)
	require.NoError(t, err)
	runs := claimAll(t, pool, planNow, "w1")
	require.Len(t, runs, 2)

	res, err := Enqueue(t.Context(), pool, planNow, sizes)
	require.NoError(t, err)
	require.Equal(t, EnqueueResult{}, res, "running runs are left alone")

	writeAll(t, pool, runs, planNow)
	open := runs[0] // newest first
	require.True(t, open.Slice.Open(planNow))

	// A week later the formerly open slice is closed but covered only up to planNow.
	later := open.Slice.To.Add(time.Hour)
	res, err = Enqueue(t.Context(), pool, later, sizes)
	require.NoError(t, err)
	require.Equal(t, EnqueueResult{Inserted: 1, Refreshed: 1}, res, "the new open slice, and the closed one's tail")
	again := claimAll(t, pool, later, "w1")
	require.Len(t, again, 2)
	writeAll(t, pool, again, later)

	res, err = Enqueue(t.Context(), pool, later.Add(time.Minute), sizes)
	require.NoError(t, err)
	require.Equal(t, EnqueueResult{Refreshed: 1}, res, "only the open slice; the closed one is covered now")
	got := runsOf(t, pool, d.ID)
	require.Len(t, got, 3)
	require.Equal(t, []string{"success", "success", "queued"}, []string{got[0].Status, got[1].Status, got[2].Status})
}

// A failed slice stays failed until its definition changes (re-enabled after a permanent
// error); then it is queued again with its attempts reset.
func TestEnqueueRetriesFailedSlicesOfAChangedDefinition(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	d := addDef(t, pool, "BACK", market.H1, 100, 1)
	now := planNow
	run := claimOne(t, pool, now, d, Window(smallSizes()[market.H1], 1, now)[0])
	_, err := Fail(t.Context(), pool, now, run, &marketdata.Error{Provider: "alpaca", Kind: marketdata.Permanent, Code: "http_404", Message: "not found"}, RetryPolicy{})
	require.NoError(t, err)
	res, err := Enqueue(t.Context(), pool, now, smallSizes())
	require.NoError(t, err)
	require.Equal(t, EnqueueResult{}, res, "a disabled definition is not planned")

	exec(t, pool, `UPDATE job_definitions SET enabled = true, disabled_reason = NULL WHERE id = $1`, d.ID)
	_, err = Enqueue(t.Context(), pool, now, smallSizes())
	require.NoError(t, err)
	r := runByID(t, pool, d.ID, run.ID)
	require.Equal(t, "queued", r.Status)
	require.Zero(t, r.Attempt)

	// Failing again without a definition change: it stays failed through any number of ticks.
	var target Run
	for _, c := range claimAll(t, pool, now, "w1") {
		if c.ID == run.ID {
			target = c
		}
	}
	require.Equal(t, run.ID, target.ID)
	_, err = Fail(t.Context(), pool, now, target, &marketdata.Error{Provider: "alpaca", Kind: marketdata.Retryable, Code: "http_503", Message: "x"}, RetryPolicy{MaxAttempts: 1})
	require.NoError(t, err)
	res, err = Enqueue(t.Context(), pool, now, smallSizes())
	require.NoError(t, err)
	require.Equal(t, EnqueueResult{}, res)
	require.Equal(t, "failed", runByID(t, pool, d.ID, run.ID).Status)
}

func runByID(t *testing.T, pool *pgxpool.Pool, defID, id string) runRow {
	t.Helper()
	for _, r := range runsOf(t, pool, defID) {
		if r.ID == id {
			return r
		}
	}
	t.Fatalf("run %s not found", id)
	return runRow{}
}

// An open slice is fetched whole once, then refreshed from one bar before where its coverage
// ends; the covered set stays one stretch and no bar is written twice.
func TestOpenSliceRefreshFetchesOnlyTheTail(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	addDef(t, pool, "TAIL", market.H1, 100, 1)
	sizes := smallSizes()
	s := Window(sizes[market.H1], 1, planNow)
	open := s[len(s)-1]
	require.True(t, open.Open(planNow))

	_, err := Enqueue(t.Context(), pool, planNow, sizes)
	require.NoError(t, err)
	var first Run
	for _, r := range claimAll(t, pool, planNow, "w1") {
		if r.Slice == open {
			first = r
		}
	}
	require.Equal(t, Slice{From: planNow.AddDate(0, 0, -1), To: open.To}, first.Fetch, "first fetch: the slice from the window's start")
	_, err = Write(t.Context(), pool, planNow, first, Fetched{Provider: "synthetic", Bars: hourBars(open.From, int(planNow.Sub(open.From)/time.Hour)+1, 10), Until: planNow})
	require.NoError(t, err)

	later := planNow.Add(3 * time.Hour)
	res, err := Enqueue(t.Context(), pool, later, sizes)
	require.NoError(t, err)
	require.Equal(t, 1, res.Refreshed, "the open slice is refreshed")
	refresh := claimAll(t, pool, later, "w1")
	require.Len(t, refresh, 1)
	require.Equal(t, Slice{From: planNow.Add(-time.Hour), To: open.To}, refresh[0].Fetch, "refresh starts one bar before the covered end")

	// The provider answers from 14:00: that bar was complete at the first fetch (15:07) and
	// lies before the refresh range, so it is not written; 15:00 was still forming then and
	// changes; 16:00 to 18:00 are new.
	bars := hourBars(ts("2026-11-26T14:00:00Z"), 5, 11)
	n, err := Write(t.Context(), pool, later, refresh[0], Fetched{Provider: "synthetic", Bars: bars, Until: later})
	require.NoError(t, err)
	require.EqualValues(t, 4, n, "the bars of the tail, changed or new")
	var old float64
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT open::float8 FROM ohlc_bars_v2 WHERE ts = '2026-11-26T14:00:00Z'`).Scan(&old))
	require.Equal(t, 10.0, old, "a bar before the refresh range is left as it was")
	var covered string
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT covered::text FROM coverage_status WHERE symbol = 'TAIL' AND timeframe = 'h1'`).Scan(&covered))
	var stretches int
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*) FROM coverage_status c, unnest(c.covered) WHERE symbol = 'TAIL' AND timeframe = 'h1'`).Scan(&stretches))
	require.Equal(t, 1, stretches, "one stretch: %s", covered)
	var upper time.Time
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT upper(covered) FROM coverage_status WHERE symbol = 'TAIL' AND timeframe = 'h1'`).Scan(&upper))
	require.True(t, upper.Equal(later), "covered up to the refresh: %s", upper)
}

// A closed slice fetched only from the window's start is planned again when the window grows
// to take more of it, and then fetched from the new start; otherwise it is left alone.
func TestEnqueueGrownWindowRefetchesTheOldestSlice(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	d := addDef(t, pool, "GROW", market.H1, 100, 40)
	sizes := smallSizes()
	_, err := Enqueue(t.Context(), pool, planNow, sizes)
	require.NoError(t, err)
	runs := claimAll(t, pool, planNow, "w1")
	oldest := runs[len(runs)-1]
	require.Equal(t, planNow.AddDate(0, 0, -40), oldest.Fetch.From, "the oldest slice is fetched from the window's start")
	require.True(t, oldest.Slice.From.Before(oldest.Fetch.From))
	writeAll(t, pool, runs, planNow)

	res, err := Enqueue(t.Context(), pool, planNow.Add(time.Second), sizes)
	require.NoError(t, err)
	require.Equal(t, EnqueueResult{Refreshed: 1}, res, "only the open slice")
	claimAll(t, pool, planNow, "w1")

	exec(t, pool, `UPDATE job_definitions SET window_days = 45 WHERE id = $1`, d.ID)
	res, err = Enqueue(t.Context(), pool, planNow, sizes)
	require.NoError(t, err)
	require.Equal(t, EnqueueResult{Requeued: 1}, res, "the oldest slice again; the open one is still running")
	again := claimAll(t, pool, planNow, "w1")
	require.Len(t, again, 1)
	require.Equal(t, oldest.Slice, again[0].Slice)
	require.Equal(t, Slice{From: planNow.AddDate(0, 0, -45), To: oldest.Slice.To}, again[0].Fetch,
		"fetched from the new start: the covered stretch does not hold it")
}

// The pass woken by a change plans what the change asks for; only the full pass (the tick)
// queues the open slice again.
func TestEnqueueChangesLeavesOpenSlicesToTheTick(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	addDef(t, pool, "OPEN", market.H1, 100, 5)
	sizes := smallSizes()
	first, err := EnqueueChanges(t.Context(), pool, planNow, sizes)
	require.NoError(t, err)
	require.Positive(t, first.Inserted, "a new definition is planned by a change pass")
	writeAll(t, pool, claimAll(t, pool, planNow, "w1"), planNow)

	res, err := EnqueueChanges(t.Context(), pool, planNow.Add(time.Minute), sizes)
	require.NoError(t, err)
	require.Equal(t, EnqueueResult{}, res, "nothing changed: the open slice waits for the tick")
	addDef(t, pool, "NEW", market.H1, 100, 5)
	res, err = EnqueueChanges(t.Context(), pool, planNow.Add(time.Minute), sizes)
	require.NoError(t, err)
	require.Equal(t, EnqueueResult{Inserted: first.Inserted}, res, "only the new definition's slices")
	res, err = Enqueue(t.Context(), pool, planNow.Add(time.Minute), sizes)
	require.NoError(t, err)
	require.Equal(t, EnqueueResult{Refreshed: 1}, res, "the operator's plan refreshes the open slice")
}

// An open slice is queued again only when a bar closed after its last fetch started, however
// many processes ask: once one of them fetched it after that bar, the others leave it alone.
func TestRefreshOnlyAfterABarClosed(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	addDef(t, pool, "AGE", market.H1, 100, 5)
	sizes := smallSizes()
	_, err := EnqueueAll(t.Context(), pool, planNow, sizes)
	require.NoError(t, err)
	writeAll(t, pool, claimAll(t, pool, planNow, "w1"), planNow)

	before := map[market.Timeframe]RefreshAfter{market.H1: {Stock: planNow, Crypto: planNow}}
	got, err := Refresh(t.Context(), pool, planNow.Add(time.Minute), before)
	require.NoError(t, err)
	require.Empty(t, got, "no bar closed after the fetch started")

	closed := map[market.Timeframe]RefreshAfter{market.H1: {Stock: planNow.Add(time.Second), Crypto: planNow.Add(time.Second)}}
	got, err = Refresh(t.Context(), pool, planNow.Add(time.Minute), closed)
	require.NoError(t, err)
	require.Equal(t, map[market.Timeframe]int{market.H1: 1}, got, "a bar closed since: the open slice")
	runs := claimAll(t, pool, planNow.Add(time.Minute), "w1")
	require.Len(t, runs, 1)
	require.Equal(t, marketdata.PurposeRefresh, runs[0].Purpose)
	require.Equal(t, planNow, runs[0].LastFetched, "ranked by its previous fetch")
	writeAll(t, pool, runs, planNow.Add(time.Minute))

	got, err = Refresh(t.Context(), pool, planNow.Add(2*time.Minute), closed)
	require.NoError(t, err)
	require.Empty(t, got, "another process asking for the same bar: already fetched after it")
	other := map[market.Timeframe]RefreshAfter{market.M15: {Stock: planNow.Add(time.Hour), Crypto: planNow.Add(time.Hour)}}
	got, err = Refresh(t.Context(), pool, planNow.Add(2*time.Minute), other)
	require.NoError(t, err)
	require.Empty(t, got, "a bar of another timeframe closing does not refresh this one")
}
