package orchestrator

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/symbolsync/backfill/market"
	"github.com/symbolsync/backfill/orchestrator/marketdata"
)

// Run is a claimed job run: what a worker needs to fetch and write its slice. Owner and Attempt
// together are the lease token every later write checks.
type Run struct {
	ID        string
	JobDefID  string
	Symbol    string
	SymbolID  string
	Timeframe market.Timeframe
	JobType   string
	Slice     Slice
	// Fetch is the part of Slice to fetch and cover: from the window's start (the slice's
	// start when the window holds all of it) to its end, unless that part is covered from its
	// start up to some point (an open slice fetched before); then it starts one bar before
	// that point, so the bar that was still forming then is fetched again.
	Fetch    Slice
	Priority int
	Attempt  int // after the claim, so the first claim is 1
	Owner    string
	// Waited is how long the run had been due when it was claimed: its pickup latency.
	Waited time.Duration
	// Claimed is the claim's instant on the statements' clock (job_runs.started_at): no bar
	// can have started after it, so the provider is asked for [Fetch.From, min(Fetch.To,
	// Claimed)) and the coverage the run adds ends there too.
	Claimed time.Time
	// Purpose is why the run was queued (job_runs.triggered_by): marketdata.PurposeRefresh
	// for a refresh of an open slice, PurposeRepair for a hole, PurposeBackfill otherwise.
	Purpose string
	// LastFetched is when this data was last fetched as of the run's queueing (zero: never).
	LastFetched time.Time
}

// purposeOf maps job_runs.triggered_by to a request purpose.
func purposeOf(triggeredBy string) string {
	switch triggeredBy {
	case "refresh":
		return marketdata.PurposeRefresh
	case "repair":
		return marketdata.PurposeRepair
	}
	return marketdata.PurposeBackfill
}

// Request is the part of Fetch the provider is asked for: it ends at the claim, never in the
// future.
func (r Run) Request() Slice {
	f := r.Fetch
	if !r.Claimed.IsZero() && r.Claimed.Before(f.To) {
		f.To = r.Claimed.UTC()
	}
	if f.To.Before(f.From) {
		f.To = f.From
	}
	return f
}

// Claim leases up to limit queued runs that are due at now, for lease, to owner
// (sql/claim.sql), in the claim order (see the package doc): backfill before refresh, then the
// highest live definition priority, then the least recently fetched, then the newest slice.
// Runs of disabled definitions are not claimed. Concurrent claimers never get the same run. A
// zero now is the database clock.
func Claim(ctx context.Context, db DB, now time.Time, owner string, lease time.Duration, limit int) ([]Run, error) {
	if owner == "" {
		return nil, errors.New("claim runs: empty owner")
	}
	if limit <= 0 {
		return nil, nil
	}
	rows, err := db.Query(ctx, claimSQL, limit, owner, lease.Seconds(), at(now))
	if err != nil {
		return nil, fmt.Errorf("claim runs: %w", err)
	}
	runs, err := collectRuns(rows)
	if err != nil {
		return nil, fmt.Errorf("claim runs: %w", err)
	}
	return runs, nil
}

// ClaimBatch leases to owner, for lease, the first due run in the claim order and up to max − 1
// due runs of the same timeframe, slice and kind (refresh or not) with it (sql/claim_batch.sql):
// what one multi-symbol request can serve. The head comes first, the rest in the claim order.
// It returns no run when nothing is due. A zero now is the database clock.
func ClaimBatch(ctx context.Context, db DB, now time.Time, owner string, lease time.Duration, max int) ([]Run, error) {
	if owner == "" {
		return nil, errors.New("claim batch: empty owner")
	}
	rows, err := db.Query(ctx, claimBatchSQL, max, owner, lease.Seconds(), at(now))
	if err != nil {
		return nil, fmt.Errorf("claim batch: %w", err)
	}
	runs, err := collectRuns(rows)
	if err != nil {
		return nil, fmt.Errorf("claim batch: %w", err)
	}
	return runs, nil
}

// Next describes the run the next claim starts from (sql/claim_peek.sql), to size its batch.
type Next struct {
	Timeframe   market.Timeframe
	Symbol      string
	From        time.Time // where its fetch starts at the latest
	Slice       Slice
	Refresh     bool
	LastFetched time.Time // zero: never
}

// lockKey names the batch claims of next's timeframe and slice (sql/claim_lock.sql).
func (n Next) lockKey() string {
	return string(n.Timeframe) + " " + n.Slice.From.UTC().Format(time.RFC3339) + " " + n.Slice.To.UTC().Format(time.RFC3339)
}

// PeekNext returns the run the next claim would start from, without claiming it; ok is false
// when nothing is due.
func PeekNext(ctx context.Context, db DB, now time.Time) (n Next, ok bool, err error) {
	var tf string
	var last *time.Time
	err = db.QueryRow(ctx, claimPeekSQL, at(now)).Scan(&tf, &n.Symbol, &n.From, &n.Slice.From, &n.Slice.To, &n.Refresh, &last)
	if errors.Is(err, pgx.ErrNoRows) {
		return Next{}, false, nil
	}
	if err != nil {
		return Next{}, false, fmt.Errorf("peek at the queue: %w", err)
	}
	n.Timeframe = market.Timeframe(tf)
	n.Slice.From, n.Slice.To = n.Slice.From.UTC(), n.Slice.To.UTC()
	n.From = n.From.UTC()
	if last != nil {
		n.LastFetched = last.UTC()
	}
	return n, true, nil
}

// collectRuns scans claim.sql's and claim_batch.sql's rows, in the claim order.
func collectRuns(rows pgx.Rows) ([]Run, error) {
	runs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Run, error) {
		var r Run
		var tf, triggeredBy string
		var windowFrom time.Time
		var coveredUntil, lastFetched *time.Time
		var waited float64
		err := row.Scan(&r.ID, &r.JobDefID, &r.Symbol, &r.SymbolID, &tf, &r.JobType,
			&r.Slice.From, &r.Slice.To, &r.Priority, &r.Attempt, &r.Owner, &windowFrom, &waited, &r.Claimed, &coveredUntil,
			&triggeredBy, &lastFetched)
		r.Waited = time.Duration(waited * float64(time.Second))
		r.Timeframe = market.Timeframe(tf)
		r.Slice.From, r.Slice.To = r.Slice.From.UTC(), r.Slice.To.UTC()
		r.Fetch = fetchRange(Slice{From: windowFrom.UTC(), To: r.Slice.To}, r.Timeframe, coveredUntil)
		r.Purpose = purposeOf(triggeredBy)
		if lastFetched != nil {
			r.LastFetched = lastFetched.UTC()
		}
		return r, err
	})
	if err != nil {
		return nil, err
	}
	// UPDATE … RETURNING keeps no order; restore the claim order.
	slices.SortStableFunc(runs, func(a, b Run) int { return claimOrder(a, b) })
	return runs, nil
}

// claimOrder is the claim order of sql/claim.sql in Go (job_runs_claim_idx): backfill before
// refresh, higher priority, least recently fetched (never first), newest slice, id.
func claimOrder(a, b Run) int {
	if c := cmp.Compare(boolInt(a.Purpose == marketdata.PurposeRefresh), boolInt(b.Purpose == marketdata.PurposeRefresh)); c != 0 {
		return c
	}
	if c := cmp.Compare(b.Priority, a.Priority); c != 0 {
		return c
	}
	if a.LastFetched.IsZero() != b.LastFetched.IsZero() {
		if a.LastFetched.IsZero() {
			return -1
		}
		return 1
	}
	if c := a.LastFetched.Compare(b.LastFetched); c != 0 {
		return c
	}
	if c := b.Slice.To.Compare(a.Slice.To); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// fetchRange is the part of s (the slice clipped to the window) to fetch when [s.From,
// coveredUntil) is covered already. A part covered nowhere from its start, or covered whole
// (the planner never queues such a run, so someone asked for it again), is fetched whole. Otherwise the range starts one bar
// length before coveredUntil: that bar may have been incomplete when it was fetched.
func fetchRange(s Slice, tf market.Timeframe, coveredUntil *time.Time) Slice {
	if coveredUntil == nil || !coveredUntil.Before(s.To) {
		return s
	}
	from := coveredUntil.UTC().Add(-tf.Duration())
	if from.Before(s.From) {
		from = s.From
	}
	return Slice{From: from, To: s.To}
}

// Heartbeat pushes the run's lease to now + lease (a zero now is the database clock). It
// returns ErrLeaseLost when the run is no longer running under this owner and attempt.
func Heartbeat(ctx context.Context, db DB, now time.Time, run Run, lease time.Duration) error {
	kept, err := HeartbeatBatch(ctx, db, now, []Run{run}, lease)
	if err != nil {
		return err
	}
	if len(kept) == 0 {
		return fmt.Errorf("renew lease of run %s: %w", run.ID, ErrLeaseLost)
	}
	return nil
}

// HeartbeatBatch pushes the leases of runs, all held by runs[0].Owner, to now + lease in one
// statement, and returns the ids of those still leased (the others were taken back).
func HeartbeatBatch(ctx context.Context, db DB, now time.Time, runs []Run, lease time.Duration) (map[string]bool, error) {
	if len(runs) == 0 {
		return nil, nil
	}
	ids := make([]string, len(runs))
	attempts := make([]int32, len(runs))
	for i, r := range runs {
		ids[i], attempts[i] = r.ID, int32(r.Attempt)
	}
	rows, err := db.Query(ctx, heartbeatSQL, ids, runs[0].Owner, attempts, lease.Seconds(), at(now))
	if err != nil {
		return nil, fmt.Errorf("renew leases of %d runs: %w", len(runs), err)
	}
	kept, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("renew leases of %d runs: %w", len(runs), err)
	}
	out := make(map[string]bool, len(kept))
	for _, id := range kept {
		out[id] = true
	}
	return out, nil
}

// Reap takes back running runs whose lease expired by now (sql/reap.sql; a zero now is the
// database clock): they return to the queue, due at once, with their attempt count kept; a
// run that already used maxAttempts fails with code lease_expired instead. It returns the ids
// of the runs it took back or failed.
func Reap(ctx context.Context, db DB, now time.Time, maxAttempts int) ([]string, error) {
	rows, err := db.Query(ctx, reapSQL, maxAttempts, at(now))
	if err != nil {
		return nil, fmt.Errorf("reap expired runs: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("reap expired runs: %w", err)
	}
	return ids, nil
}
