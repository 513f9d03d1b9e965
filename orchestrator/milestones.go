package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Milestones are the backfill milestones a successful run reached for its definition, measured
// from the definition's request (created, or re-enabled by tracking).
type Milestones struct {
	// FirstBars is set when this run wrote the definition's first bars since the request.
	FirstBars time.Duration
	// Covered is set when this run completed the definition's requested window.
	Covered time.Duration
	// Reached tells which of the two are set.
	ReachedFirstBars, ReachedCovered bool
}

// RecordMilestones records the milestones of run's definition after the run succeeded with
// written bars changed, and returns those reached now (stamped with now; a zero now is the
// database clock). Call it after the run's write committed. The durations count from the
// definition's requested_at, which whoever made the request stamped (the replicator: the
// database clock).
func RecordMilestones(ctx context.Context, db DB, now time.Time, run Run, written int64) (Milestones, error) {
	var first, covered *float64
	err := db.QueryRow(ctx, milestonesSQL, run.JobDefID, written, at(now)).Scan(&first, &covered)
	if errors.Is(err, pgx.ErrNoRows) {
		return Milestones{}, nil
	}
	if err != nil {
		return Milestones{}, fmt.Errorf("record milestones of definition %s: %w", run.JobDefID, err)
	}
	var m Milestones
	if first != nil {
		m.FirstBars, m.ReachedFirstBars = seconds(*first), true
	}
	if covered != nil {
		m.Covered, m.ReachedCovered = seconds(*covered), true
	}
	return m, nil
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
