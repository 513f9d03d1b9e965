package replicator

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
)

// Kinds of apply (the kind label and the notification's kind).
const (
	kindStream    = "stream"
	kindPartial   = "partial"
	kindReconcile = "reconcile"
)

// Reasons for a full reconcile.
const (
	reasonStart     = "start"
	reasonReconnect = "reconnect"
	reasonCreated   = "created"
	reasonLost      = "lost"
)

// applyLockKey is the advisory lock that serialises applies in a database: "backfill" in ASCII.
const applyLockKey int64 = 0x6261636b66696c6c

// How long an apply waits for upstream transactions to become visible (see sql/invisible.sql).
// The window is the time between a commit's WAL flush and its proc array update: microseconds,
// unless the committing backend waits for a synchronous standby.
const visibleTimeout = 10 * time.Second

// applyArgs says what to apply.
type applyArgs struct {
	// all re-derives every symbol (symbols is ignored).
	all bool
	// symbols are the symbol ids to re-derive; empty re-derives none (progress only).
	symbols []string
	// lsn, when not 0, is recorded as applied with the effects.
	lsn pglogrepl.LSN
	// resetLSN stores lsn even when it is lower than the recorded one (a new slot).
	resetLSN bool
	// xids are the upstream transactions the apply must see (32-bit xids of Begin messages).
	xids []uint32
	kind string
}

type applyResult struct {
	inserted, updated, disabled int64
}

func (a applyResult) String() string {
	return fmt.Sprintf("%d inserted, %d updated, %d disabled", a.inserted, a.updated, a.disabled)
}

// apply runs the rule in one transaction: take the apply lock, wait until the upstream
// transactions are visible, then the apply statement (effects, progress and notification).
func (r *Replicator) apply(ctx context.Context, a applyArgs) (applyResult, error) {
	var symbols any // NULL: every symbol
	if !a.all {
		symbols = append([]string{}, a.symbols...) // never nil: a nil slice would be NULL
	}
	var lsn any
	if a.lsn != 0 {
		lsn = a.lsn.String()
	}
	var res applyResult
	err := pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockSQL, applyLockKey); err != nil {
			return fmt.Errorf("take apply lock: %w", err)
		}
		if err := waitVisible(ctx, tx, a.xids, r.cfg.Now); err != nil {
			return err
		}
		var recorded int64
		var notified string
		if err := tx.QueryRow(ctx, applySQL, symbols, r.cfg.SlotName, lsn, a.resetLSN, a.kind).
			Scan(&res.inserted, &res.updated, &res.disabled, &recorded, &notified); err != nil {
			return fmt.Errorf("apply tracking changes: %w", err)
		}
		return nil
	})
	if err != nil {
		return applyResult{}, err
	}
	r.metrics.applies.WithLabelValues(a.kind).Inc()
	return res, nil
}

// waitVisible waits until the transaction's statements see every upstream transaction in xids.
func waitVisible(ctx context.Context, tx pgx.Tx, xids []uint32, now func() time.Time) error {
	if len(xids) == 0 {
		return nil
	}
	ids := make([]int64, len(xids))
	for i, x := range xids {
		ids[i] = int64(x)
	}
	deadline := now().Add(visibleTimeout)
	wait := 100 * time.Microsecond
	for {
		var invisible int64
		if err := tx.QueryRow(ctx, invisibleSQL, ids).Scan(&invisible); err != nil {
			return fmt.Errorf("check visibility of upstream transactions: %w", err)
		}
		if invisible == 0 {
			return nil
		}
		if now().After(deadline) {
			return fmt.Errorf("%d upstream transactions still invisible after %s", invisible, visibleTimeout)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		case <-t.C:
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// reconcile re-derives every symbol's definitions. With a new slot, its consistent point is
// recorded as the applied LSN: the new slot streams only what commits after it, and the
// reconcile covers everything before.
func (r *Replicator) reconcile(ctx context.Context, reason string, newSlot pglogrepl.LSN, log *slog.Logger) error {
	began := r.cfg.Now()
	res, err := r.apply(ctx, applyArgs{all: true, lsn: newSlot, resetLSN: newSlot != 0, kind: kindReconcile})
	if err != nil {
		return fmt.Errorf("reconcile job definitions (%s): %w", reason, err)
	}
	r.metrics.reconciles.WithLabelValues(reason).Inc()
	log.LogAttrs(ctx, slog.LevelInfo, "reconciled job definitions with tracking",
		slog.String("reason", reason), slog.Int64("inserted", res.inserted), slog.Int64("updated", res.updated),
		slog.Int64("disabled", res.disabled), slog.Duration("took", r.cfg.Now().Sub(began)))
	return nil
}
