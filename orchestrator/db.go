package orchestrator

import (
	"context"
	_ "embed"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DB is what the queries need: a *pgxpool.Pool, a *pgx.Conn or a pgx.Tx (then they run inside
// the caller's transaction; writes that need their own transaction use a savepoint).
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Begin(ctx context.Context) (pgx.Tx, error)
}

// at is how a statement receives the clock: now itself, or nil for a zero now, which the
// statement's coalesce($n::timestamptz, now()) turns into the database's clock.
func at(now time.Time) *time.Time {
	if now.IsZero() {
		return nil
	}
	return &now
}

// ErrLeaseLost means the run is no longer running under this owner and attempt: its lease
// expired and it was reaped or claimed again. The caller must drop its result.
var ErrLeaseLost = errors.New("lease lost")

var (
	//go:embed sql/enqueue.sql
	enqueueSQL string
	//go:embed sql/claim.sql
	claimSQL string
	//go:embed sql/heartbeat.sql
	heartbeatSQL string
	//go:embed sql/reap.sql
	reapSQL string
	//go:embed sql/write.sql
	writeSQL string
	//go:embed sql/definitions_version.sql
	definitionsVersionSQL string
	//go:embed sql/fail.sql
	failSQL string
	//go:embed sql/queue.sql
	queueSQL string
	//go:embed sql/milestones.sql
	milestonesSQL string
	//go:embed sql/refresh.sql
	refreshSQL string
	//go:embed sql/claim_batch.sql
	claimBatchSQL string
	//go:embed sql/claim_peek.sql
	claimPeekSQL string
	//go:embed sql/claim_lock.sql
	claimLockSQL string
)
