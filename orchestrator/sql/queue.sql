-- Queue figures for metrics and for the wake-up timer: queued runs of enabled definitions, the
-- age of the oldest due one (seconds, 0 when none), and in how many seconds the next
-- not-yet-due one is due (NULL when none), at clock $1 (NULL: the database's now()). Always one
-- row: the clock's.
SELECT count(r.id)::bigint,
       coalesce(extract(epoch FROM c.now - min(r.next_attempt_at) FILTER (WHERE r.next_attempt_at <= c.now)), 0)::float8,
       extract(epoch FROM min(r.next_attempt_at) FILTER (WHERE r.next_attempt_at > c.now) - c.now)::float8
FROM (SELECT coalesce($1::timestamptz, now()) AS now) AS c
LEFT JOIN (public.job_runs r JOIN public.job_definitions d ON d.id = r.job_def_id AND d.enabled)
  ON r.status = 'queued'
GROUP BY c.now
