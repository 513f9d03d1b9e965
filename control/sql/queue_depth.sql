-- Queued runs of enabled definitions (due or not): what the workers have left to do. Runs of a
-- disabled definition are not counted; no worker claims them.
SELECT count(*)::bigint
FROM public.job_runs AS r
JOIN public.job_definitions AS d ON d.id = r.job_def_id
WHERE r.status = 'queued' AND d.enabled
