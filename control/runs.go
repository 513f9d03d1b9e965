package control

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/symbolsync/backfill/replicator"
)

var (
	//go:embed sql/list_runs.sql
	listRunsSQL string
	//go:embed sql/lock_run.sql
	lockRunSQL string
	//go:embed sql/retry_run.sql
	retryRunSQL string
	//go:embed sql/cancel_run.sql
	cancelRunSQL string
	//go:embed sql/wake.sql
	wakeSQL string
)

// Run is a row of public.job_runs. Pointers are nil for SQL NULL; text columns are "" for NULL.
type Run struct {
	ID, JobDefID, Symbol, Timeframe string
	SliceFrom, SliceTo              time.Time
	Status                          string // queued, running, success, failed or cancelled
	Attempt, RowsWritten            int32
	Provider, ErrorCode             string
	ErrorMessage, LeaseOwner        string
	NextAttemptAt                   time.Time
	StartedAt, FinishedAt           *time.Time
	CreatedAt, UpdatedAt            time.Time
}

func (r *Run) scan(row pgx.Row) error {
	return row.Scan(&r.ID, &r.JobDefID, &r.Symbol, &r.Timeframe, &r.SliceFrom, &r.SliceTo, &r.Status, &r.Attempt,
		&r.RowsWritten, &r.Provider, &r.ErrorCode, &r.ErrorMessage, &r.LeaseOwner, &r.NextAttemptAt, &r.StartedAt,
		&r.FinishedAt, &r.CreatedAt, &r.UpdatedAt)
}

// RunFilter selects job runs; zero fields select everything.
type RunFilter struct {
	Symbol    string   // ticker; trimmed and upper-cased
	Timeframe string   // m15, h1, h4, d1 or w1
	Statuses  []string // any of queued, running, success, failed, cancelled
	JobDefID  string   // a UUID
	PageSize  int      // 1–MaxPageSize; 0 means DefaultPageSize
	PageToken string   // NextPageToken of the previous page; "" for the first
}

// RunPage is one page of job runs.
type RunPage struct {
	Runs          []Run
	NextPageToken string // "" on the last page
}

// Runs lists job runs, newest first (created_at, then slice, descending).
func (s *Service) Runs(ctx context.Context, f RunFilter) (RunPage, error) {
	sym, err := normalizeSymbol("symbol", f.Symbol)
	if err != nil {
		return RunPage{}, err
	}
	if err := checkTimeframe("timeframe", f.Timeframe); err != nil {
		return RunPage{}, err
	}
	wanted := make([]string, 0, len(f.Statuses))
	for _, st := range f.Statuses {
		if !slices.Contains(statuses(), st) {
			return RunPage{}, invalid("statuses", "status %q is not one of %s", st, strings.Join(statuses(), ", "))
		}
		if !slices.Contains(wanted, st) {
			wanted = append(wanted, st)
		}
	}
	var defID *string
	if f.JobDefID != "" {
		id, err := parseUUID("job_def_id", f.JobDefID)
		if err != nil {
			return RunPage{}, err
		}
		defID = &id
	}
	size, err := pageSize(f.PageSize)
	if err != nil {
		return RunPage{}, err
	}
	slices.Sort(wanted) // the digest must not depend on the order they were given in
	digest := filterDigest(sym, f.Timeframe, strings.Join(wanted, ","), deref(defID))
	after, err := decodePageToken(f.PageToken, tokenRuns, digest)
	if err != nil {
		return RunPage{}, err
	}
	var afterCreated, afterSlice *time.Time
	var afterID *string
	if after != nil {
		c, sf := time.UnixMicro(after.Created), time.UnixMicro(after.SliceFrom)
		afterCreated, afterSlice, afterID = &c, &sf, &after.ID
	}
	rows, err := s.pool.Query(ctx, listRunsSQL, nullString(sym), nullString(f.Timeframe), wanted, defID,
		afterCreated, afterSlice, afterID, size+1)
	if err != nil {
		return RunPage{}, fmt.Errorf("list job runs: %w", err)
	}
	runs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Run, error) {
		var r Run
		err := r.scan(row)
		return r, err
	})
	if err != nil {
		return RunPage{}, fmt.Errorf("list job runs: %w", err)
	}
	page := RunPage{Runs: runs}
	if len(runs) > size {
		page.Runs = runs[:size]
		last := runs[size-1]
		page.NextPageToken = pageToken{
			Version: tokenVersion, Kind: tokenRuns, Filters: digest,
			Created: last.CreatedAt.UnixMicro(), SliceFrom: last.SliceFrom.UnixMicro(), ID: last.ID,
		}.encode()
	}
	return page, nil
}

// RetryRun queues a failed or cancelled run again, due now, with its attempts, error and times
// reset, and wakes the workers. A run in another state, or of a disabled definition (no worker
// would claim it), is refused with a *StateError.
func (s *Service) RetryRun(ctx context.Context, id string) (Run, error) {
	return s.changeRun(ctx, id, "retry", func(id, status string, enabled bool, reason string) error {
		switch {
		case status != "failed" && status != "cancelled":
			return &StateError{Message: fmt.Sprintf("job run %s is %s: only a failed or cancelled run can be retried", id, status)}
		case !enabled:
			msg := fmt.Sprintf("job run %s belongs to a disabled definition, whose runs no worker claims: enable the definition first (UpdateJobDefinition with enabled true), which also retries its failed runs", id)
			if reason != "" {
				msg += fmt.Sprintf("; it was disabled because: %s", truncate(reason, 200))
			}
			return &StateError{Message: msg}
		}
		return nil
	}, retryRunSQL, true)
}

// CancelRun cancels a queued or running run. A running run's worker loses its lease and writes
// nothing; the planner does not queue a cancelled run again (RetryRun does). A finished run is
// refused with a *StateError.
func (s *Service) CancelRun(ctx context.Context, id string) (Run, error) {
	return s.changeRun(ctx, id, "cancel", func(id, status string, _ bool, _ string) error {
		if status != "queued" && status != "running" {
			return &StateError{Message: fmt.Sprintf("job run %s is %s already: only a queued or running run can be cancelled", id, status)}
		}
		return nil
	}, cancelRunSQL, false)
}

// changeRun locks run id, lets allow refuse the change given its state, applies update and, if
// wake, notifies the workers, all in one transaction.
func (s *Service) changeRun(ctx context.Context, rawID, op string, allow func(id, status string, enabled bool, reason string) error,
	update string, wake bool) (Run, error) {
	id, err := parseUUID("id", rawID)
	if err != nil {
		return Run{}, err
	}
	var run Run
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var status, reason string
		var enabled bool
		switch err := tx.QueryRow(ctx, lockRunSQL, id).Scan(&status, &enabled, &reason); {
		case errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("job run %s: %w", id, ErrNotFound)
		case err != nil:
			return fmt.Errorf("lock run: %w", err)
		}
		if err := allow(id, status, enabled, reason); err != nil {
			return err
		}
		if err := run.scan(tx.QueryRow(ctx, update, id, at(s.now()))); err != nil {
			return fmt.Errorf("update run: %w", err)
		}
		if wake {
			if _, err := tx.Exec(ctx, wakeSQL, replicator.NotifyChannel, wakePayload(op+"_job_run")); err != nil {
				return fmt.Errorf("wake workers: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		var state *StateError
		if errors.Is(err, ErrNotFound) || errors.As(err, &state) {
			return Run{}, err
		}
		return Run{}, fmt.Errorf("%s job run %s: %w", op, id, err)
	}
	return run, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
