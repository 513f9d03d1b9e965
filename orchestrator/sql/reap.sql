-- Take back running runs whose lease expired: back to the queue, due now, attempt kept; a run
-- that already used $1 attempts fails (a slice that kills its worker every time must stop).
UPDATE public.job_runs r
SET status = CASE WHEN r.attempt >= $1 THEN 'failed' ELSE 'queued' END,
    next_attempt_at = now(),
    lease_owner = NULL,
    lease_expires_at = NULL,
    heartbeat_at = NULL,
    error_code = 'lease_expired',
    error_message = 'lease expired: the worker stopped renewing it',
    finished_at = CASE WHEN r.attempt >= $1 THEN now() END
WHERE r.id IN (
  SELECT id FROM public.job_runs
  WHERE status = 'running' AND lease_expires_at < now()
  FOR UPDATE SKIP LOCKED
)
RETURNING r.id::text
