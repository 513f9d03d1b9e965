-- Queue run $1 again, due at clock $2 (NULL: the database's now()), as if new: attempts reset,
-- error, times and lease cleared. The caller has checked (under the lock of lock_run.sql) that
-- it is failed or cancelled.
UPDATE public.job_runs
SET status = 'queued', attempt = 0, next_attempt_at = coalesce($2::timestamptz, now()), error_code = NULL,
    error_message = NULL, started_at = NULL, finished_at = NULL, progress_percent = 0, failed_revision = NULL,
    lease_owner = NULL, lease_expires_at = NULL, heartbeat_at = NULL, triggered_by = 'control'
WHERE id = $1::uuid
RETURNING id::text, job_def_id::text, symbol, timeframe, slice_from, slice_to, status, attempt,
          rows_written, coalesce(provider, ''), coalesce(error_code, ''), coalesce(error_message, ''),
          coalesce(lease_owner, ''), next_attempt_at, started_at, finished_at, created_at, updated_at
