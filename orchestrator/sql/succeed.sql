-- Mark run $1 a success with $2 rows written by provider $3 and release its lease. The caller
-- holds the row lock taken by lock_run.sql in the same transaction.
UPDATE public.job_runs
SET status = 'success', rows_written = $2, provider = $3, progress_percent = 100,
    finished_at = now(), error_code = NULL, error_message = NULL,
    lease_owner = NULL, lease_expires_at = NULL
WHERE id = $1::uuid
