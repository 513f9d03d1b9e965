-- The holes of definitions $1 (uuid[]) as stored, with the status of their latest repair run
-- (NULL when none, or when that run is gone), oldest session first.
SELECT h.job_def_id::text, to_char(h.session_date, 'YYYY-MM-DD'), h.range_from, h.range_to, h.kind,
       h.expected_bars, h.found_bars, h.state, h.repairs, coalesce(h.reason, ''), h.detected_at,
       r.status, coalesce(r.error_message, '')
FROM public.coverage_holes AS h
LEFT JOIN public.job_runs AS r ON r.id = h.repair_run_id
WHERE h.job_def_id = ANY ($1::uuid[])
ORDER BY h.job_def_id, h.session_date
