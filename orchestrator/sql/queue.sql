-- Queue figures for metrics and for the wake-up timer: queued runs of enabled definitions, the
-- age of the oldest due one (seconds, 0 when none), and when the next not-yet-due one is due.
SELECT count(*)::bigint,
       coalesce(extract(epoch FROM now() - min(r.next_attempt_at) FILTER (WHERE r.next_attempt_at <= now())), 0)::float8,
       extract(epoch FROM min(r.next_attempt_at) FILTER (WHERE r.next_attempt_at > now()) - now())::float8
FROM public.job_runs r
JOIN public.job_definitions d ON d.id = r.job_def_id
WHERE r.status = 'queued' AND d.enabled
