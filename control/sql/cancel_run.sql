-- Cancel run $1 and take its lease away: a worker running it fails its next heartbeat and its
-- final write (both require status 'running' under its owner and attempt), so it writes
-- nothing. The caller has checked (under the lock of lock_run.sql) that it is queued or running.
-- The last error, if any, is kept. finished_at is clock $2 (NULL: the database's now()).
UPDATE public.job_runs
SET status = 'cancelled', finished_at = coalesce($2::timestamptz, now()), progress_percent = 0,
    lease_owner = NULL, lease_expires_at = NULL, heartbeat_at = NULL
WHERE id = $1::uuid
RETURNING id::text, job_def_id::text, symbol, timeframe, slice_from, slice_to, status, attempt,
          rows_written, coalesce(provider, ''), coalesce(error_code, ''), coalesce(error_message, ''),
          coalesce(lease_owner, ''), next_attempt_at, started_at, finished_at, created_at, updated_at
