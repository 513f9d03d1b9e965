-- Take back running runs whose lease expired at clock $2 (NULL: the database's now()): back to
-- the queue, due now, attempt kept; a run that already used $1 attempts fails (a slice that
-- kills its worker every time must stop), at its definition's revision.
UPDATE public.job_runs r
SET status = CASE WHEN r.attempt >= $1 THEN 'failed' ELSE 'queued' END,
    next_attempt_at = coalesce($2::timestamptz, now()),
    lease_owner = NULL,
    lease_expires_at = NULL,
    heartbeat_at = NULL,
    error_code = 'lease_expired',
    error_message = 'lease expired: the worker stopped renewing it',
    finished_at = CASE WHEN r.attempt >= $1 THEN coalesce($2::timestamptz, now()) END,
    failed_revision = CASE WHEN r.attempt >= $1 THEN d.revision END
FROM public.job_definitions d
WHERE d.id = r.job_def_id
  AND r.id IN (
    SELECT id FROM public.job_runs
    WHERE status = 'running' AND lease_expires_at < coalesce($2::timestamptz, now())
    FOR UPDATE SKIP LOCKED
  )
RETURNING r.id::text
