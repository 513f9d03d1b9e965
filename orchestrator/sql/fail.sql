-- Record a failure of run $1 leased to owner $2 at attempt $3: status $4 ('queued' or
-- 'failed'), $5 attempts given back (1 when the try does not count), due again in $6 seconds,
-- error_code $7 and error_message $8. When $9 is not null the definition is disabled with that
-- reason, in the same statement. $10 is the clock (NULL: the database's now()). A run failed
-- for good records its definition's revision (before this disable), so the planner queues it
-- again once the definition changes. Returns how many runs were updated: 0 means the lease was
-- lost.
WITH r AS (
  UPDATE public.job_runs AS jr
  SET status = $4,
      attempt = greatest(jr.attempt - $5, 0),
      next_attempt_at = coalesce($10::timestamptz, now()) + make_interval(secs => $6::float8),
      error_code = $7,
      error_message = $8,
      finished_at = CASE WHEN $4 = 'failed' THEN coalesce($10::timestamptz, now()) END,
      failed_revision = CASE WHEN $4 = 'failed' THEN d.revision END,
      lease_owner = NULL,
      lease_expires_at = NULL,
      heartbeat_at = NULL
  FROM public.job_definitions AS d
  WHERE jr.id = $1::uuid AND jr.status = 'running' AND jr.lease_owner = $2 AND jr.attempt = $3
    AND d.id = jr.job_def_id
  RETURNING jr.job_def_id
),
-- A run failed for good leaves a hole: the completeness checker looks at its definition again.
dirty AS (
  INSERT INTO public.coverage_dirty (symbol_id, timeframe)
  SELECT jd.symbol_id, jd.timeframe
  FROM r JOIN public.job_definitions AS jd ON jd.id = r.job_def_id
  WHERE $4 = 'failed'
  ON CONFLICT (symbol_id, timeframe) DO UPDATE SET seq = nextval('public.coverage_dirty_seq')
  RETURNING 1
),
d AS (
  UPDATE public.job_definitions d
  SET enabled = false, disabled_reason = $9
  FROM r
  WHERE $9::text IS NOT NULL AND d.id = r.job_def_id
  RETURNING d.id
)
SELECT count(*) FROM r
