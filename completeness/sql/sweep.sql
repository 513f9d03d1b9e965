-- The rolling sweep: the $1 enabled definitions checked longest ago (never checked first), and
-- the definitions whose repair run has finished (or is gone) while a hole waits on it.
(SELECT d.id::text
 FROM public.job_definitions AS d
 LEFT JOIN public.coverage_completeness AS c ON c.job_def_id = d.id
 WHERE d.enabled
 ORDER BY c.checked_at NULLS FIRST, d.id
 LIMIT $1)
UNION
SELECT DISTINCT h.job_def_id::text
FROM public.coverage_holes AS h
LEFT JOIN public.job_runs AS r ON r.id = h.repair_run_id
WHERE h.state = 'repairing' AND (r.id IS NULL OR r.status NOT IN ('queued', 'running'))
