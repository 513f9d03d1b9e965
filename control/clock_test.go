package control_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/control"
	"github.com/symbolsync/backfill/orchestrator"
	"github.com/symbolsync/backfill/supabase/pgtest"
)

// Every statement of the control plane that stamps a time uses Config.Now, as the
// orchestrators' statements do: with a clock far from the wall clock (before it and after it),
// a run the control plane queues is due for an orchestrator on that clock, and every stamp is
// the clock's.
func TestServiceStampsOnItsClock(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		at   time.Time
	}{
		{"past", time.Date(2026, 3, 8, 7, 0, 0, 0, time.UTC)},
		{"future", time.Date(2028, 2, 29, 12, 0, 0, 0, time.UTC)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			pool := pgtest.DB(t)
			now := tc.at
			sizes := orchestrator.SliceSizesFor(10000)
			s, err := control.New(control.Config{Pool: pool, SliceSizes: sizes, Now: func() time.Time { return now }})
			require.NoError(t, err)
			queued := addRun(t, pool, "CLK", "queued", 0)

			// Tick plans on the clock: the runs it makes are created and due at it.
			tick, err := s.Tick(ctx)
			require.NoError(t, err)
			require.Positive(t, tick.Inserted)
			var created, due []time.Time
			rows, err := pool.Query(ctx, `SELECT created_at, next_attempt_at FROM job_runs WHERE id <> $1`, queued.id)
			require.NoError(t, err)
			for rows.Next() {
				var c, d time.Time
				require.NoError(t, rows.Scan(&c, &d))
				created, due = append(created, c.UTC()), append(due, d.UTC())
			}
			require.NoError(t, rows.Err())
			require.Len(t, created, tick.Inserted)
			for i := range created {
				require.Equal(t, []time.Time{now, now}, []time.Time{created[i], due[i]})
			}

			// Cancel finishes on the clock; retry makes the run due at it, so an orchestrator on
			// the same clock claims it at once.
			now = tc.at.Add(time.Minute)
			cancelled, err := s.CancelRun(ctx, queued.id)
			require.NoError(t, err)
			require.Equal(t, now, cancelled.FinishedAt.UTC())
			now = tc.at.Add(2 * time.Minute)
			retried, err := s.RetryRun(ctx, queued.id)
			require.NoError(t, err)
			require.Equal(t, now, retried.NextAttemptAt.UTC())
			claimed, err := orchestrator.Claim(ctx, pool, now, "w1", time.Minute, 100)
			require.NoError(t, err)
			require.Len(t, claimed, tick.Inserted+1, "the planned runs and the retried one are due")

			// Enabling a disabled definition is a new request, stamped on the clock.
			off, on := false, true
			_, err = s.UpdateDefinition(ctx, control.DefinitionUpdate{ID: queued.defID, Enabled: &off})
			require.NoError(t, err)
			now = tc.at.Add(3 * time.Minute)
			def, err := s.UpdateDefinition(ctx, control.DefinitionUpdate{ID: queued.defID, Enabled: &on})
			require.NoError(t, err)
			require.Equal(t, now, def.RequestedAt.UTC())
		})
	}
}
