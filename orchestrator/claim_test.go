package orchestrator

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/market"
	"github.com/symbolsync/backfill/supabase/pgtest"
)

// addRuns queues n runs of d on consecutive hours ending at end.
func addRuns(t *testing.T, pool *pgxpool.Pool, d def, n int, end time.Time) {
	t.Helper()
	exec(t, pool, `
INSERT INTO job_runs (job_def_id, symbol, timeframe, job_type, slice_from, slice_to)
SELECT d.id, d.symbol, d.timeframe, d.job_type, $2::timestamptz - (k + 1) * interval '1 hour', $2::timestamptz - k * interval '1 hour'
FROM job_definitions d, generate_series(0, $3 - 1) k
WHERE d.id = $1`, d.ID, end, n)
}

func TestClaimWatchlistBeforeSearchBacklog(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	end := ts("2026-11-26T15:00:00Z")
	for i := range 20 {
		addRuns(t, pool, addDef(t, pool, fmt.Sprintf("S%02d", i), market.H1, 100, 30), 10, end)
	}
	// The watchlist run is older than every search run: priority still comes first.
	watch := addDef(t, pool, "WATCH", market.H1, 300, 30)
	addRuns(t, pool, watch, 1, end.AddDate(0, 0, -20))

	runs, err := Claim(t.Context(), pool, dbClock, "w1", time.Minute, 1)
	require.NoError(t, err)
	require.Len(t, runs, 1)
	require.Equal(t, watch.ID, runs[0].JobDefID)
	require.Equal(t, 300, runs[0].Priority)
	require.Equal(t, 1, runs[0].Attempt)
	require.Equal(t, "w1", runs[0].Owner)
	require.Equal(t, watch.SymbolID, runs[0].SymbolID)

	var status, owner string
	var leaseLeft float64
	require.NoError(t, pool.QueryRow(t.Context(), `
SELECT status, lease_owner, extract(epoch FROM lease_expires_at - now())::float8 FROM job_runs WHERE id = $1`, runs[0].ID).
		Scan(&status, &owner, &leaseLeft))
	require.Equal(t, "running", status)
	require.Equal(t, "w1", owner)
	require.InDelta(t, 60, leaseLeft, 5)
}

func TestClaimUsesLivePriorityThenNewestSlice(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	end := ts("2026-11-26T15:00:00Z")
	a := addDef(t, pool, "AAA", market.H1, 100, 30)
	b := addDef(t, pool, "BBB", market.H1, 100, 30)
	addRuns(t, pool, a, 3, end)
	addRuns(t, pool, b, 3, end.Add(-24*time.Hour))

	// A watchlist add raises B after its runs were queued.
	exec(t, pool, `UPDATE job_definitions SET priority = 300 WHERE id = $1`, b.ID)
	runs, err := Claim(t.Context(), pool, dbClock, "w1", time.Minute, 4)
	require.NoError(t, err)
	require.Len(t, runs, 4)
	var got []string
	for _, r := range runs {
		got = append(got, r.Symbol+" "+r.Slice.To.UTC().Format("01-02T15"))
	}
	require.Equal(t, []string{"BBB 11-25T15", "BBB 11-25T14", "BBB 11-25T13", "AAA 11-26T15"}, got)
}

func TestClaimSkipsNotDueAndDisabled(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	end := ts("2026-11-26T15:00:00Z")
	later := addDef(t, pool, "LATER", market.H1, 300, 30)
	off := addDef(t, pool, "OFF", market.H1, 300, 30)
	on := addDef(t, pool, "ON", market.H1, 100, 30)
	addRuns(t, pool, later, 1, end)
	addRuns(t, pool, off, 1, end)
	addRuns(t, pool, on, 1, end)
	exec(t, pool, `UPDATE job_runs SET next_attempt_at = now() + interval '1 hour' WHERE job_def_id = $1`, later.ID)
	exec(t, pool, `UPDATE job_definitions SET enabled = false WHERE id = $1`, off.ID)

	runs := claimAll(t, pool, dbClock, "w1")
	require.Len(t, runs, 1)
	require.Equal(t, on.ID, runs[0].JobDefID)
	require.Empty(t, claimAll(t, pool, dbClock, "w2"), "a running run is not claimed again")
}

func TestConcurrentClaimersNeverShareARun(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	const total = 300
	for i := range 3 {
		addRuns(t, pool, addDef(t, pool, fmt.Sprintf("C%d", i), market.H1, 100*(i+1), 30), total/3, ts("2026-11-26T15:00:00Z"))
	}
	const claimers = 8
	got := make([][]string, claimers)
	errs := make([]error, claimers)
	var wg sync.WaitGroup
	for i := range claimers {
		wg.Go(func() {
			for {
				runs, err := Claim(t.Context(), pool, dbClock, fmt.Sprintf("w%d", i), time.Minute, 3)
				if err != nil {
					errs[i] = err
					return
				}
				if len(runs) == 0 {
					return
				}
				for _, r := range runs {
					got[i] = append(got[i], r.ID)
				}
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for i := range claimers {
		require.NoError(t, errs[i])
		for _, id := range got[i] {
			require.False(t, seen[id], "run %s claimed twice", id)
			seen[id] = true
		}
	}
	require.Len(t, seen, total)
	var attempts int
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT sum(attempt) FROM job_runs WHERE status = 'running'`).Scan(&attempts))
	require.Equal(t, total, attempts, "every run claimed exactly once")
}

// The claim order among runs of equal priority: never fetched first, then the least recently
// fetched; a refresh after every backfill; a raised priority moves queued runs at once; a
// disabled definition's runs are not claimed. The claim reads job_runs_claim_idx and sorts
// nothing.
func TestClaimOrderIsFair(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	end := ts("2026-11-26T15:00:00Z")
	mk := func(sym string, priority int, fetched string, refresh bool) def {
		d := addDef(t, pool, sym, market.H1, priority, 30)
		if fetched != "" {
			exec(t, pool, `INSERT INTO coverage_status (symbol, timeframe, symbol_id, last_success_at) VALUES ($1, 'h1', $2, $3)`,
				sym, d.SymbolID, ts(fetched))
		}
		trig := "planner"
		if refresh {
			trig = "refresh"
		}
		exec(t, pool, `
INSERT INTO job_runs (job_def_id, symbol, timeframe, job_type, slice_from, slice_to, triggered_by)
SELECT d.id, d.symbol, d.timeframe, d.job_type, $2::timestamptz - interval '1 hour', $2, $3 FROM job_definitions d WHERE d.id = $1`,
			d.ID, end, trig)
		return d
	}
	refresh := mk("REFRESH", 300, "", true) // a watchlist refresh: after every backfill
	old := mk("OLD", 100, "2026-11-20T00:00:00Z", false)
	recent := mk("RECENT", 100, "2026-11-25T00:00:00Z", false)
	never := mk("NEVER", 100, "", false)
	high := mk("HIGH", 200, "2026-11-25T12:00:00Z", false)
	off := mk("OFF", 1000, "", false)
	exec(t, pool, `UPDATE job_definitions SET enabled = false WHERE id = $1`, off.ID)
	raised := mk("RAISED", 100, "2026-11-26T00:00:00Z", false)
	exec(t, pool, `UPDATE job_definitions SET priority = 250 WHERE id = $1`, raised.ID)

	// Seven rows are cheaper to sort than to read through an index: forbid the sort, to see
	// that the index serves the order (at scale the planner picks it on its own: bench provider).
	tx, err := pool.Begin(t.Context())
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(t.Context()) }()
	_, err = tx.Exec(t.Context(), `SET LOCAL enable_seqscan = off; SET LOCAL enable_sort = off`)
	require.NoError(t, err)
	rows, err := tx.Query(t.Context(), `EXPLAIN (FORMAT TEXT) `+claimPeekSQL, nil)
	require.NoError(t, err)
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(t.Context()))
	plan := strings.Join(lines, "\n")
	require.Contains(t, plan, "job_runs_claim_idx", "the claim reads the index in its order")
	require.NotContains(t, plan, "Sort", "and sorts nothing")

	var order []string
	for {
		runs, err := Claim(t.Context(), pool, dbClock, "w1", time.Minute, 1)
		require.NoError(t, err)
		if len(runs) == 0 {
			break
		}
		order = append(order, runs[0].Symbol)
	}
	require.Equal(t, []string{raised.Symbol, high.Symbol, never.Symbol, old.Symbol, recent.Symbol, refresh.Symbol}, order)
}

// A batch is the first run in the claim order and the due runs of the same timeframe, slice
// and kind, up to the size asked for.
func TestClaimBatchTakesBatchMates(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	end := ts("2026-11-26T15:00:00Z")
	head := addDef(t, pool, "HEAD", market.H1, 300, 30)
	addRuns(t, pool, head, 1, end)
	for i := range 5 {
		addRuns(t, pool, addDef(t, pool, fmt.Sprintf("MATE%d", i), market.H1, 100, 30), 1, end)
	}
	other := addDef(t, pool, "OTHER", market.H1, 50, 30)
	addRuns(t, pool, other, 1, end.Add(-time.Hour)) // another slice
	m15 := addDef(t, pool, "QUARTER", market.M15, 50, 30)
	addRuns(t, pool, m15, 1, end) // another timeframe

	runs, err := ClaimBatch(t.Context(), pool, dbClock, "w1", time.Minute, 4)
	require.NoError(t, err)
	require.Len(t, runs, 4)
	require.Equal(t, "HEAD", runs[0].Symbol, "the head first")
	for _, r := range runs {
		require.Equal(t, runs[0].Slice, r.Slice)
		require.Equal(t, market.H1, r.Timeframe)
	}
	rest, err := ClaimBatch(t.Context(), pool, dbClock, "w2", time.Minute, 100)
	require.NoError(t, err)
	require.Len(t, rest, 2, "the two mates left, not the other slice or timeframe")
	require.Equal(t, runs[0].Slice, rest[0].Slice)
}
