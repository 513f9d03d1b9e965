package orchestrator

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/orchestrator/marketdata"
	"github.com/symbolsync/backfill/supabase/pgtest"
)

// A fixed planning instant: a Thursday afternoon (the 7-day grid starts on Thursdays).
var planNow = ts("2026-11-26T15:07:00Z")

func TestEnqueueMatchesTheGrid(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	sizes := DefaultSliceSizes()
	defs := map[marketdata.Timeframe]def{}
	for _, tf := range marketdata.Timeframes {
		defs[tf] = addDef(t, pool, "AAPL", tf, 100, 400)
	}
	res, err := Enqueue(t.Context(), pool, sizes, planNow)
	require.NoError(t, err)
	total := 0
	for _, tf := range marketdata.Timeframes {
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
	d := addDef(t, pool, "MSFT", marketdata.M15, 100, 30)
	first, err := Enqueue(t.Context(), pool, DefaultSliceSizes(), planNow)
	require.NoError(t, err)
	before := runsOf(t, pool, d.ID)
	second, err := Enqueue(t.Context(), pool, DefaultSliceSizes(), planNow.Add(time.Minute))
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
	d := addDef(t, pool, "IBM", marketdata.H1, 100, 30)
	exec(t, pool, `UPDATE job_definitions SET enabled = false WHERE id = $1`, d.ID)
	res, err := Enqueue(t.Context(), pool, DefaultSliceSizes(), planNow)
	require.NoError(t, err)
	require.Equal(t, EnqueueResult{}, res)
	require.Empty(t, runsOf(t, pool, d.ID))
}

// Slices fetched with zero bars are covered: the next tick queues only the open slice again.
func TestEnqueueCoveredEvenIfEmpty(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	d := addDef(t, pool, "NVDA", marketdata.M15, 100, 30)
	_, err := Enqueue(t.Context(), pool, DefaultSliceSizes(), planNow)
	require.NoError(t, err)
	runs := claimAll(t, pool, "w1")
	require.Len(t, runs, 6)
	writeAll(t, pool, runs, planNow)

	res, err := Enqueue(t.Context(), pool, DefaultSliceSizes(), planNow.Add(time.Minute))
	require.NoError(t, err)
	require.Equal(t, EnqueueResult{Requeued: 1}, res, "only the open slice is fetched again")
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
	sizes := DefaultSliceSizes()
	d := addDef(t, pool, "TSLA", marketdata.M15, 100, 7)
	_, err := Enqueue(t.Context(), pool, sizes, planNow)
	require.NoError(t, err)
	runs := claimAll(t, pool, "w1")
	require.Len(t, runs, 2)

	res, err := Enqueue(t.Context(), pool, sizes, planNow)
	require.NoError(t, err)
	require.Equal(t, EnqueueResult{}, res, "running runs are left alone")

	writeAll(t, pool, runs, planNow)
	open := runs[0] // newest first
	require.True(t, open.Slice.Open(planNow))

	// A week later the formerly open slice is closed but covered only up to planNow.
	later := open.Slice.To.Add(time.Hour)
	res, err = Enqueue(t.Context(), pool, sizes, later)
	require.NoError(t, err)
	require.Equal(t, EnqueueResult{Inserted: 1, Requeued: 1}, res, "the new open slice, and the closed one's tail")
	again := claimAll(t, pool, "w1")
	require.Len(t, again, 2)
	writeAll(t, pool, again, later)

	res, err = Enqueue(t.Context(), pool, sizes, later.Add(time.Minute))
	require.NoError(t, err)
	require.Equal(t, EnqueueResult{Requeued: 1}, res, "only the open slice; the closed one is covered now")
	got := runsOf(t, pool, d.ID)
	require.Len(t, got, 3)
	require.Equal(t, []string{"success", "success", "queued"}, []string{got[0].Status, got[1].Status, got[2].Status})
}

// A failed slice stays failed until its definition changes (re-enabled after a permanent
// error); then it is queued again with its attempts reset.
func TestEnqueueRetriesFailedSlicesOfAChangedDefinition(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	d := addDef(t, pool, "BACK", marketdata.H1, 100, 1)
	now := planNow
	run := claimOne(t, pool, d, Window(DefaultSliceSizes()[marketdata.H1], 1, now)[0])
	_, err := Fail(t.Context(), pool, run, &marketdata.Error{Provider: "alpaca", Kind: marketdata.Permanent, Code: "http_404", Message: "not found"}, RetryPolicy{})
	require.NoError(t, err)
	res, err := Enqueue(t.Context(), pool, DefaultSliceSizes(), now)
	require.NoError(t, err)
	require.Equal(t, EnqueueResult{}, res, "a disabled definition is not planned")

	exec(t, pool, `UPDATE job_definitions SET enabled = true, disabled_reason = NULL WHERE id = $1`, d.ID)
	_, err = Enqueue(t.Context(), pool, DefaultSliceSizes(), now)
	require.NoError(t, err)
	r := runByID(t, pool, d.ID, run.ID)
	require.Equal(t, "queued", r.Status)
	require.Zero(t, r.Attempt)

	// Failing again without a definition change: it stays failed through any number of ticks.
	var target Run
	for _, c := range claimAll(t, pool, "w1") {
		if c.ID == run.ID {
			target = c
		}
	}
	require.Equal(t, run.ID, target.ID)
	_, err = Fail(t.Context(), pool, target, &marketdata.Error{Provider: "alpaca", Kind: marketdata.Retryable, Code: "http_503", Message: "x"}, RetryPolicy{MaxAttempts: 1})
	require.NoError(t, err)
	res, err = Enqueue(t.Context(), pool, DefaultSliceSizes(), now)
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
