-- Record a failure of run $1 leased to owner $2 at attempt $3: status $4 ('queued' or
-- 'failed'), $5 attempts given back (1 when the try does not count), due again in $6 seconds,
-- error_code $7 and error_message $8. When $9 is not null the definition is disabled with that
-- reason, in the same statement. Returns how many runs were updated: 0 means the lease was lost.
WITH r AS (
  UPDATE public.job_runs
  SET status = $4,
      attempt = greatest(attempt - $5, 0),
      next_attempt_at = now() + make_interval(secs => $6::float8),
      error_code = $7,
      error_message = $8,
      finished_at = CASE WHEN $4 = 'failed' THEN now() END,
      lease_owner = NULL,
      lease_expires_at = NULL,
      heartbeat_at = NULL
  WHERE id = $1::uuid AND status = 'running' AND lease_owner = $2 AND attempt = $3
  RETURNING job_def_id
),
d AS (
  UPDATE public.job_definitions d
  SET enabled = false, disabled_reason = $9
  FROM r
  WHERE $9::text IS NOT NULL AND d.id = r.job_def_id
  RETURNING d.id
)
SELECT count(*) FROM r
