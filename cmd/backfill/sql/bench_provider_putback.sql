-- `backfill bench provider`: put the runs owner $1 holds back in the queue, as a shutdown does
-- (their place among equals kept), so that single claims can be timed on a full queue. Returns
-- how many.
WITH back AS (
  UPDATE public.job_runs
  SET status = 'queued', attempt = attempt - 1, lease_owner = NULL, lease_expires_at = NULL,
      heartbeat_at = NULL, started_at = NULL
  WHERE status = 'running' AND lease_owner = $1
  RETURNING 1
)
SELECT count(*) FROM back
