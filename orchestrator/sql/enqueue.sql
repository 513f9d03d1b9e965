-- Plan enabled definitions: one queued run per grid slice of the window not yet covered.
-- $1 text[] timeframes, $2 bigint[] slice sizes in seconds (same order), $3 timestamptz the
-- clock ("now"; NULL means the database's now()), $4 boolean changed_only: plan only the
-- definitions changed since they were last planned (job_definitions.planned_revision differs
-- from revision: new, re-enabled, window grown, priority changed), in time proportional to the
-- change; false plans all of them (at start, after a slice boundary, and as the tick's safety
-- net). Refreshing open slices is sql/refresh.sql's, not this statement's.
--
-- The grid: slice k of a timeframe is [k*size, (k+1)*size) seconds after the Unix epoch; the
-- window [now - window_days, now) takes k from floor(start/size) to ceil(now/size) - 1.
-- A run fetches only the part of its slice inside the window, [window_from, slice_to) with
-- window_from = greatest(slice_from, now - window_days): slices are a provider page long, so
-- the oldest one usually starts long before the window. New and re-queued runs are due at now.
-- A slice is skipped when coverage_status.covered contains that part.
--
-- Writes only what is new: slices without a run are inserted (a slice that has one is left
-- alone, not even locked, so a pass with nothing to do writes nothing), and existing runs are
-- set back to queued only when the definition changed after the run failed for good (its
-- revision passed the run's failed_revision: re-enabled after a permanent error, raised by a
-- new tracker), or when the window grew to take more of a slice that succeeded. The UPDATE
-- re-checks each run as it is now, so a run that succeeded meanwhile is not queued again.
-- The definitions planned are stamped with their revision.
WITH clock AS (
  SELECT coalesce($3::timestamptz, now()) AS now
),
sizes AS (
  SELECT s.timeframe, s.size_s
  FROM unnest($1::text[], $2::bigint[]) AS s (timeframe, size_s)
),
-- A window day is 24 hours, as on the grid: make_interval(days => …) would follow the session's
-- TimeZone across a DST change and move the window's start by an hour.
defs AS MATERIALIZED (
  SELECT d.id, d.symbol, d.timeframe, d.job_type, d.revision, s.size_s, clock.now,
         clock.now - make_interval(hours => 24 * d.window_days) AS window_start
  FROM public.job_definitions d
  JOIN sizes s ON s.timeframe = d.timeframe
  CROSS JOIN clock
  WHERE d.enabled AND (NOT $4::boolean OR d.planned_revision IS DISTINCT FROM d.revision)
),
grid AS (
  SELECT d.id AS job_def_id, d.symbol, d.timeframe, d.job_type, d.revision, d.window_start,
         to_timestamp(k * d.size_s) AS slice_from,
         to_timestamp((k + 1) * d.size_s) AS slice_to
  FROM defs d,
       generate_series(
         floor(extract(epoch FROM d.window_start) / d.size_s)::bigint,
         ceil(extract(epoch FROM d.now) / d.size_s)::bigint - 1
       ) AS k
),
todo AS MATERIALIZED (
  SELECT g.*, greatest(g.slice_from, g.window_start) AS window_from, r.id AS run_id
  FROM grid g
  LEFT JOIN public.coverage_status c ON c.symbol = g.symbol AND c.timeframe = g.timeframe
  LEFT JOIN public.job_runs r
    ON r.job_def_id = g.job_def_id AND r.slice_from = g.slice_from AND r.slice_to = g.slice_to
  WHERE c.covered IS NULL OR NOT c.covered @> tstzrange(greatest(g.slice_from, g.window_start), g.slice_to)
),
inserted AS (
  INSERT INTO public.job_runs AS r
    (job_def_id, symbol, timeframe, job_type, slice_from, slice_to, window_from, triggered_by, next_attempt_at, created_at)
  SELECT t.job_def_id, t.symbol, t.timeframe, t.job_type, t.slice_from, t.slice_to, t.window_from, 'planner', clock.now, clock.now
  FROM todo t CROSS JOIN clock
  WHERE t.run_id IS NULL
  ORDER BY t.job_def_id, t.slice_from
  ON CONFLICT (job_def_id, slice_from, slice_to) DO NOTHING
  RETURNING 1
),
requeued AS (
  UPDATE public.job_runs AS r
  SET status = 'queued', attempt = 0, next_attempt_at = clock.now, error_code = NULL,
      error_message = NULL, started_at = NULL, finished_at = NULL, progress_percent = 0,
      lease_owner = NULL, lease_expires_at = NULL, heartbeat_at = NULL, triggered_by = 'planner',
      window_from = t.window_from, failed_revision = NULL
  FROM todo t CROSS JOIN clock
  WHERE t.run_id IS NOT NULL AND r.id = t.run_id
    AND ((r.status = 'failed' AND t.revision > coalesce(r.failed_revision, 0))
         OR (r.status = 'success' AND t.window_from < coalesce(r.window_from, r.slice_from)))
  RETURNING 1
),
planned AS (
  UPDATE public.job_definitions AS d
  SET planned_revision = defs.revision
  FROM defs
  WHERE d.id = defs.id AND d.planned_revision IS DISTINCT FROM defs.revision
  RETURNING 1
)
SELECT (SELECT count(*) FROM inserted)::int, (SELECT count(*) FROM requeued)::int
