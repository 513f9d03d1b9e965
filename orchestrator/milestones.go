package orchestrator

import (
	"context"
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
	got, err := RecordMilestonesBatch(ctx, db, now, map[string]int64{run.JobDefID: written})
	if err != nil {
		return Milestones{}, err
	}
	return got[run.JobDefID], nil
}

// RecordMilestonesBatch is RecordMilestones for several definitions in one statement: written
// maps a definition's id to the bars its runs just changed. It returns the milestones reached
// now, by definition id (definitions that reached none are absent).
func RecordMilestonesBatch(ctx context.Context, db DB, now time.Time, written map[string]int64) (map[string]Milestones, error) {
	if len(written) == 0 {
		return nil, nil
	}
	ids := make([]string, 0, len(written))
	counts := make([]int64, 0, len(written))
	for id, n := range written {
		ids = append(ids, id)
		counts = append(counts, n)
	}
	rows, err := db.Query(ctx, milestonesSQL, ids, counts, at(now))
	if err != nil {
		return nil, fmt.Errorf("record milestones of %d definitions: %w", len(ids), err)
	}
	out := make(map[string]Milestones)
	var id string
	var first, covered *float64
	if _, err := pgx.ForEachRow(rows, []any{&id, &first, &covered}, func() error {
		var m Milestones
		if first != nil {
			m.FirstBars, m.ReachedFirstBars = seconds(*first), true
		}
		if covered != nil {
			m.Covered, m.ReachedCovered = seconds(*covered), true
		}
		out[id] = m
		return nil
	}); err != nil {
		return nil, fmt.Errorf("record milestones of %d definitions: %w", len(ids), err)
	}
	return out, nil
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
