-- The unfinished and failed runs of definitions $1 (uuid[]): what they fetch (from window_from,
-- or slice_from for runs made by hand, to slice_to) and their status.
SELECT r.job_def_id::text, r.status, coalesce(r.window_from, r.slice_from), r.slice_to
FROM public.job_runs AS r
WHERE r.job_def_id = ANY ($1::uuid[]) AND r.status IN ('queued', 'running', 'failed')
