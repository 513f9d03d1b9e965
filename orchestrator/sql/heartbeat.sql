-- Renew the leases of runs $1 (at attempts $3, in parallel) held by owner $2 for $4 seconds
-- from clock $5 (NULL: the database's now()). Returns the ids still leased: a run missing was
-- taken back meanwhile.
UPDATE public.job_runs AS r
SET lease_expires_at = coalesce($5::timestamptz, now()) + make_interval(secs => $4::float8),
    heartbeat_at = coalesce($5::timestamptz, now())
FROM unnest($1::uuid[], $3::int[]) AS h (id, attempt)
WHERE r.id = h.id AND r.status = 'running' AND r.lease_owner = $2 AND r.attempt = h.attempt
RETURNING r.id::text
