-- Queue repair runs ($1 definitions, $2 from, $3 to, in parallel): job runs of exactly the
-- holes' bar starts, due at clock $4, triggered_by 'repair'. A run of the same range that is
-- not queued or running is queued again (attempts reset). The holes inside each range move
-- to state repairing, with one more repair and the run's id. Returns the runs queued.
WITH wanted AS (
  SELECT w.id, w.range_from, w.range_to
  FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[]) AS w (id, range_from, range_to)
),
runs AS (
  INSERT INTO public.job_runs AS r
    (job_def_id, symbol, timeframe, job_type, slice_from, slice_to, window_from, triggered_by, next_attempt_at, created_at)
  SELECT d.id, d.symbol, d.timeframe, d.job_type, w.range_from, w.range_to, w.range_from, 'repair',
         coalesce($4::timestamptz, now()), coalesce($4::timestamptz, now())
  FROM wanted AS w JOIN public.job_definitions AS d ON d.id = w.id AND d.enabled
  ORDER BY d.id, w.range_from
  ON CONFLICT (job_def_id, slice_from, slice_to) DO UPDATE
    SET status = 'queued', attempt = 0, next_attempt_at = coalesce($4::timestamptz, now()), error_code = NULL,
        error_message = NULL, started_at = NULL, finished_at = NULL, progress_percent = 0, lease_owner = NULL,
        lease_expires_at = NULL, heartbeat_at = NULL, triggered_by = 'repair', window_from = EXCLUDED.window_from,
        failed_revision = NULL
    WHERE r.status NOT IN ('queued', 'running')
  RETURNING r.id, r.job_def_id, r.slice_from, r.slice_to
),
marked AS (
  UPDATE public.coverage_holes AS h
  SET state = 'repairing', repairs = h.repairs + 1, repair_run_id = runs.id, reason = NULL
  FROM runs
  WHERE h.job_def_id = runs.job_def_id AND h.range_from >= runs.slice_from AND h.range_to <= runs.slice_to
  RETURNING 1
)
SELECT count(*) FROM runs
