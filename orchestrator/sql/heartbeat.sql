-- Renew the lease of run $1 held by owner $2 at attempt $3 for $4 seconds from clock $5 (NULL:
-- the database's now()).
UPDATE public.job_runs
SET lease_expires_at = coalesce($5::timestamptz, now()) + make_interval(secs => $4::float8),
    heartbeat_at = coalesce($5::timestamptz, now())
WHERE id = $1::uuid AND status = 'running' AND lease_owner = $2 AND attempt = $3
