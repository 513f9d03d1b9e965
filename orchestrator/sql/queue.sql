-- Queue figures for metrics and for the wake-up timer: queued runs of enabled definitions
-- (claim_priority is NULL while a definition is disabled), the age of the oldest due one
-- (seconds, 0 when none), and in how many seconds the next not-yet-due one is due (NULL when
-- none), at clock $1 (NULL: the database's now()). Always one row: the clock's.
SELECT count(r.id)::bigint,
       coalesce(extract(epoch FROM c.now - min(r.next_attempt_at) FILTER (WHERE r.next_attempt_at <= c.now)), 0)::float8,
       extract(epoch FROM min(r.next_attempt_at) FILTER (WHERE r.next_attempt_at > c.now) - c.now)::float8
FROM (SELECT coalesce($1::timestamptz, now()) AS now) AS c
LEFT JOIN public.job_runs r ON r.status = 'queued' AND r.claim_priority IS NOT NULL
GROUP BY c.now
