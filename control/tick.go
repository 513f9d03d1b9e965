package control

import (
	"context"
	_ "embed"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/symbolsync/backfill/orchestrator"
	"github.com/symbolsync/backfill/replicator"
)

var (
	//go:embed sql/queue_depth.sql
	queueDepthSQL string
	//go:embed sql/replication_status.sql
	replicationStatusSQL string
)

// TickResult is what a Tick queued.
type TickResult struct {
	Inserted   int // new runs
	Requeued   int // runs set back to queued (open slices, slices just closed, failed runs of changed definitions)
	QueueDepth int // queued runs of enabled definitions after planning
}

// Tick plans every enabled definition now (orchestrator.Enqueue with Config.SliceSizes at
// Config.Now, the database clock by default, refreshing open slices as an orchestrator's tick does) and wakes the
// orchestrators of every process, in one transaction: when it commits, the workers claim what
// it queued at once. Without Config.SliceSizes it refuses with a *StateError.
func (s *Service) Tick(ctx context.Context) (TickResult, error) {
	if s.cfg.SliceSizes == nil {
		return TickResult{}, &StateError{Message: "this server runs no orchestrator, so it does not know the grid the orchestrators plan on: " +
			"call RunTick on a server that runs one (backfill serve --provider …, or backfill dev)"}
	}
	var res TickResult
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		planned, err := orchestrator.Enqueue(ctx, tx, s.now(), s.cfg.SliceSizes)
		if err != nil {
			return err
		}
		res.Inserted, res.Requeued = planned.Inserted, planned.Requeued+planned.Refreshed
		var depth int64
		if err := tx.QueryRow(ctx, queueDepthSQL).Scan(&depth); err != nil {
			return fmt.Errorf("count queued runs: %w", err)
		}
		res.QueueDepth = int(depth)
		if _, err := tx.Exec(ctx, wakeSQL, replicator.NotifyChannel, wakePayload("run_tick")); err != nil {
			return fmt.Errorf("wake workers: %w", err)
		}
		return nil
	})
	if err != nil {
		return TickResult{}, fmt.Errorf("run tick: %w", err)
	}
	return res, nil
}

// ReplicationStatus is the state of the replicator's slot. LSNs are in PostgreSQL's text form
// (e.g. "0/16B6C50"), "" when unknown.
type ReplicationStatus struct {
	SlotName          string // "" when the slot does not exist
	SlotExists        bool
	Active            bool   // a walsender streams from it now
	ActivePID         int32  // that walsender's pid, 0 when none
	ActiveClient      string // its client's address, "" when unknown
	ConfirmedFlushLSN string
	CurrentLSN        string
	LagBytes          int64 // how far the replicator is behind: CurrentLSN minus ConfirmedFlushLSN
	RetainedBytes     int64 // WAL the slot keeps on disk: CurrentLSN minus the slot's restart_lsn
	AppliedLSN        string
	AppliedAt         *time.Time // when the replicator last recorded progress
	WALStatus         string     // reserved, extended, unreserved or lost
}

// ReplicationStatus reports Config.SlotName, who holds it and the progress recorded on it.
func (s *Service) ReplicationStatus(ctx context.Context) (ReplicationStatus, error) {
	var st ReplicationStatus
	err := s.pool.QueryRow(ctx, replicationStatusSQL, s.cfg.SlotName).Scan(&st.SlotExists, &st.Active, &st.ActivePID,
		&st.ActiveClient, &st.ConfirmedFlushLSN, &st.CurrentLSN, &st.LagBytes, &st.AppliedLSN, &st.AppliedAt, &st.WALStatus, &st.RetainedBytes)
	if err != nil {
		return ReplicationStatus{}, fmt.Errorf("read status of slot %q: %w", s.cfg.SlotName, err)
	}
	if st.SlotExists {
		st.SlotName = s.cfg.SlotName
	}
	return st, nil
}
