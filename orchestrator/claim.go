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
// (sql/claim.sql): highest live definition priority first, then newest slice first. Runs of
// disabled definitions are not claimed. Concurrent claimers never get the same run. A zero now
// is the database clock.
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
	runs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Run, error) {
		var r Run
		var tf string
		var windowFrom time.Time
		var coveredUntil *time.Time
		var waited float64
		err := row.Scan(&r.ID, &r.JobDefID, &r.Symbol, &r.SymbolID, &tf, &r.JobType,
			&r.Slice.From, &r.Slice.To, &r.Priority, &r.Attempt, &r.Owner, &windowFrom, &waited, &r.Claimed, &coveredUntil)
		r.Waited = time.Duration(waited * float64(time.Second))
		r.Timeframe = market.Timeframe(tf)
		r.Slice.From, r.Slice.To = r.Slice.From.UTC(), r.Slice.To.UTC()
		r.Fetch = fetchRange(Slice{From: windowFrom.UTC(), To: r.Slice.To}, r.Timeframe, coveredUntil)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("claim runs: %w", err)
	}
	// UPDATE … RETURNING keeps no order; restore the claim order.
	slices.SortFunc(runs, func(a, b Run) int {
		if c := cmp.Compare(b.Priority, a.Priority); c != 0 {
			return c
		}
		return b.Slice.To.Compare(a.Slice.To)
	})
	return runs, nil
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
	tag, err := db.Exec(ctx, heartbeatSQL, run.ID, run.Owner, run.Attempt, lease.Seconds(), at(now))
	if err != nil {
		return fmt.Errorf("renew lease of run %s: %w", run.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("renew lease of run %s: %w", run.ID, ErrLeaseLost)
	}
	return nil
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
