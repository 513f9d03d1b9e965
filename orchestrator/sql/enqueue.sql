-- Plan every enabled definition: one queued run per grid slice of its window not yet covered.
-- $1 text[] timeframes, $2 bigint[] slice sizes in seconds (same order), $3 timestamptz the
-- clock ("now"; NULL means the database's now()), $4 boolean refresh: also queue again the
-- successful runs of slices that are not covered whole (the open slice, the slice that just
-- closed), when they finished at least $5 seconds ago. The tick refreshes (with half a tick, so
-- several processes ticking refresh a slice at most about once a tick between them); a pass
-- woken by a change of the definitions only adds what the change asks for.
--
-- The grid: slice k of a timeframe is [k*size, (k+1)*size) seconds after the Unix epoch; the
-- window [now - window_days, now) takes k from floor(start/size) to ceil(now/size) - 1.
-- A run fetches only the part of its slice inside the window, [window_from, slice_to) with
-- window_from = greatest(slice_from, now - window_days): slices are a provider page long, so
-- the oldest one usually starts long before the window. New and re-queued runs are due at now.
-- A slice is skipped when coverage_status.covered contains that part. For a slice that is not
-- covered and already has a run, only a successful run is set back to queued: that is the
-- open slice (covered only up to when it was fetched) and, once, the slice that just closed.
-- A failed run is queued again (attempts reset) only once its definition changed after it
-- failed, i.e. its revision passed the run's failed_revision: re-enabled after a permanent
-- error, or raised by a new tracker. (A revision, not a time: the definition's changes and the
-- run's failure are stamped by different writers.) Queued, running and other failed runs are
-- left alone, so the pass is idempotent.
-- The coverage filter reads the statement's snapshot, but ON CONFLICT sees the run as it is
-- now: a closed slice whose run succeeded while this statement ran would look uncovered and be
-- queued again. Hence the second condition, on the run's own row: only a run claimed before its
-- slice ended (started_at < slice_to, both on the clock) can have left the slice partly
-- covered, or one planned for less of the slice than the window now asks (window_days grew).
WITH clock AS (
  SELECT coalesce($3::timestamptz, now()) AS now
),
sizes AS (
  SELECT s.timeframe, s.size_s
  FROM unnest($1::text[], $2::bigint[]) AS s (timeframe, size_s)
),
-- A window day is 24 hours, as on the grid: make_interval(days => …) would follow the session's
-- TimeZone across a DST change and move the window's start by an hour.
defs AS (
  SELECT d.id, d.symbol, d.timeframe, d.job_type, s.size_s, clock.now,
         clock.now - make_interval(hours => 24 * d.window_days) AS window_start
  FROM public.job_definitions d
  JOIN sizes s ON s.timeframe = d.timeframe
  CROSS JOIN clock
  WHERE d.enabled
),
grid AS (
  SELECT d.id AS job_def_id, d.symbol, d.timeframe, d.job_type, d.window_start,
         to_timestamp(k * d.size_s) AS slice_from,
         to_timestamp((k + 1) * d.size_s) AS slice_to
  FROM defs d,
       generate_series(
         floor(extract(epoch FROM d.window_start) / d.size_s)::bigint,
         ceil(extract(epoch FROM d.now) / d.size_s)::bigint - 1
       ) AS k
),
slices AS (
  SELECT g.*, greatest(g.slice_from, g.window_start) AS window_from FROM grid g
)
INSERT INTO public.job_runs AS r
  (job_def_id, symbol, timeframe, job_type, slice_from, slice_to, window_from, triggered_by, next_attempt_at, created_at)
SELECT s.job_def_id, s.symbol, s.timeframe, s.job_type, s.slice_from, s.slice_to, s.window_from, 'planner', clock.now, clock.now
FROM slices s
CROSS JOIN clock
LEFT JOIN public.coverage_status c ON c.symbol = s.symbol AND c.timeframe = s.timeframe
WHERE c.covered IS NULL OR NOT c.covered @> tstzrange(s.window_from, s.slice_to)
ORDER BY s.job_def_id, s.slice_from
ON CONFLICT (job_def_id, slice_from, slice_to) DO UPDATE
  SET status = 'queued', attempt = 0, next_attempt_at = coalesce($3::timestamptz, now()), error_code = NULL,
      error_message = NULL, started_at = NULL, finished_at = NULL, progress_percent = 0,
      lease_owner = NULL, lease_expires_at = NULL, heartbeat_at = NULL, triggered_by = 'planner',
      window_from = EXCLUDED.window_from, failed_revision = NULL
  WHERE (r.status = 'success' AND (($4::boolean AND (r.started_at IS NULL OR r.started_at < r.slice_to)
                                    AND (r.finished_at IS NULL
                                         OR r.finished_at <= coalesce($3::timestamptz, now()) - make_interval(secs => $5::float8)))
                                   OR EXCLUDED.window_from < coalesce(r.window_from, r.slice_from)))
     OR (r.status = 'failed' AND EXISTS (
           SELECT 1 FROM public.job_definitions d
           WHERE d.id = r.job_def_id AND d.revision > coalesce(r.failed_revision, 0)))
RETURNING (xmax = 0) AS inserted
