-- Lock run $1 for a state change and return its status and whether its definition is enabled,
-- with the definition's disabled_reason. No row: there is no run $1.
SELECT r.status, d.enabled, coalesce(d.disabled_reason, '')
FROM public.job_runs AS r
JOIN public.job_definitions AS d ON d.id = r.job_def_id
WHERE r.id = $1::uuid
FOR UPDATE OF r
