-- `backfill bench provider`: record every queued or running run as fetched at $1, as a drain
-- that wrote them would leave them (their coverage is left as it was), so the steady state
-- starts from a backfilled system. Returns how many.
WITH done AS (
  UPDATE public.job_runs
  SET status = 'success', attempt = greatest(attempt, 1), lease_owner = NULL, lease_expires_at = NULL,
      heartbeat_at = NULL, started_at = $1::timestamptz, finished_at = $1::timestamptz, progress_percent = 100
  WHERE status IN ('queued', 'running')
  RETURNING 1
)
SELECT count(*) FROM done
