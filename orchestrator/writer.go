package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/symbolsync/backfill/orchestrator/marketdata"
)

// Fetched is the outcome of fetching one run's slice.
type Fetched struct {
	Provider string           // stored as ohlc_bars_v2.provider and job_runs.provider
	Bars     []marketdata.Bar // bars outside the slice are dropped; a repeated TS is written once
	// Until is when the fetch started: the slice counts as covered up to min(slice end,
	// Until), so an open slice is not marked covered beyond what could exist.
	Until time.Time
}

// Write stores a finished slice in one transaction (a savepoint when db is a pgx.Tx): the bars
// through COPY into a staging table and an upsert that changes only rows whose values differ,
// the covered range in coverage_status, and the run's success with rows_written. Nothing is
// written when the run is no longer leased to run.Owner at run.Attempt: that returns
// ErrLeaseLost. It returns the number of bar rows inserted or changed.
func Write(ctx context.Context, db DB, run Run, f Fetched) (written int64, err error) {
	tx, err := db.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("write run %s: begin: %w", run.ID, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	var locked string
	switch err = tx.QueryRow(ctx, lockRunSQL, run.ID, run.Owner, run.Attempt).Scan(&locked); {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, fmt.Errorf("write run %s: %w", run.ID, ErrLeaseLost)
	case err != nil:
		return 0, fmt.Errorf("write run %s: lock run: %w", run.ID, err)
	}
	// Providers promise bars inside the slice; one that breaks the promise must not write
	// outside the range this run covers.
	bars := make([]marketdata.Bar, 0, len(f.Bars))
	for _, b := range f.Bars {
		if !b.TS.Before(run.Slice.From) && b.TS.Before(run.Slice.To) {
			bars = append(bars, b)
		}
	}
	if len(bars) > 0 {
		if _, err = tx.Exec(ctx, stageSQL); err != nil {
			return 0, fmt.Errorf("write run %s: create staging table: %w", run.ID, err)
		}
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"backfill_bars_stage"},
			[]string{"ts", "open", "high", "low", "close", "volume"},
			pgx.CopyFromSlice(len(bars), func(i int) ([]any, error) {
				b := bars[i]
				return []any{b.TS, b.Open, b.High, b.Low, b.Close, b.Volume}, nil
			}))
		if err != nil {
			return 0, fmt.Errorf("write run %s: copy bars: %w", run.ID, err)
		}
		var tag pgconn.CommandTag
		if tag, err = tx.Exec(ctx, writeBarsSQL, run.SymbolID, string(run.Timeframe), f.Provider); err != nil {
			return 0, fmt.Errorf("write run %s: upsert bars: %w", run.ID, err)
		}
		written = tag.RowsAffected()
	}
	if _, err = tx.Exec(ctx, writeCoverageSQL, run.Symbol, string(run.Timeframe), run.SymbolID,
		run.Slice.From, run.Slice.To, f.Until, written, f.Provider); err != nil {
		return 0, fmt.Errorf("write run %s: record coverage: %w", run.ID, err)
	}
	if _, err = tx.Exec(ctx, succeedSQL, run.ID, written, f.Provider); err != nil {
		return 0, fmt.Errorf("write run %s: mark success: %w", run.ID, err)
	}
	if err = tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("write run %s: commit: %w", run.ID, err)
	}
	return written, nil
}
