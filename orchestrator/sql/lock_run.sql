-- Lock run $1 if it is still running under owner $2 at attempt $3. No row: the lease was lost
-- (reaped, or claimed again), and the caller must not write. The lock keeps the reaper and
-- other writers off the run until the transaction ends.
SELECT id::text FROM public.job_runs
WHERE id = $1::uuid AND status = 'running' AND lease_owner = $2 AND attempt = $3
FOR UPDATE
