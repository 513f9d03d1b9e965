package orchestrator

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/market"
	"github.com/symbolsync/backfill/supabase/pgtest"
)

func TestMilestones(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.DB(t)
	d := addDef(t, pool, "AAPL", market.H1, 100, 60)
	var updatedBefore time.Time
	require.NoError(t, pool.QueryRow(ctx, `SELECT updated_at FROM job_definitions WHERE id = $1`, d.ID).Scan(&updatedBefore))
	_, err := Enqueue(ctx, pool, dbClock, smallSizes())
	require.NoError(t, err)
	runs := claimAll(t, pool, dbClock, "w1")
	require.Greater(t, len(runs), 2, "a 60-day h1 window is several 30-day slices")

	// The first run writes no bars: no milestone yet.
	ms, err := RecordMilestones(ctx, pool, dbClock, runs[0], 0)
	require.NoError(t, err)
	require.Equal(t, Milestones{}, ms)

	// A run with bars: the first-bars milestone, once.
	_, err = Write(ctx, pool, dbClock, runs[1], Fetched{Provider: "synthetic", Bars: hourBars(runs[1].Slice.From, 3, 10)})
	require.NoError(t, err)
	ms, err = RecordMilestones(ctx, pool, dbClock, runs[1], 3)
	require.NoError(t, err)
	require.True(t, ms.ReachedFirstBars)
	require.False(t, ms.ReachedCovered, "other runs are still running")
	require.GreaterOrEqual(t, ms.FirstBars, time.Duration(0))
	ms, err = RecordMilestones(ctx, pool, dbClock, runs[1], 3)
	require.NoError(t, err)
	require.False(t, ms.ReachedFirstBars, "reported once per request")

	// The last run done completes the window.
	writeAll(t, pool, append([]Run{runs[0]}, runs[2:]...), dbClock)
	ms, err = RecordMilestones(ctx, pool, dbClock, runs[len(runs)-1], 0)
	require.NoError(t, err)
	require.True(t, ms.ReachedCovered)
	require.GreaterOrEqual(t, ms.Covered, ms.FirstBars)

	var updatedAfter time.Time
	var first, covered *time.Time
	require.NoError(t, pool.QueryRow(ctx, `SELECT updated_at, first_bars_at, covered_at FROM job_definitions WHERE id = $1`, d.ID).
		Scan(&updatedAfter, &first, &covered))
	require.NotNil(t, first)
	require.NotNil(t, covered)
	require.Equal(t, updatedBefore, updatedAfter, "milestones are not configuration changes")

	// Re-enabling is a new request: the milestones start over.
	exec(t, pool, `UPDATE job_definitions SET enabled = false WHERE id = $1`, d.ID)
	exec(t, pool, `UPDATE job_definitions SET enabled = true, requested_at = now(), first_bars_at = NULL, covered_at = NULL WHERE id = $1`, d.ID)
	ms, err = RecordMilestones(ctx, pool, dbClock, runs[1], 1)
	require.NoError(t, err)
	require.True(t, ms.ReachedFirstBars)
}
