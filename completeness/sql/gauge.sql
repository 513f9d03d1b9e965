-- Holes of enabled definitions by timeframe and state, for the gauge.
SELECT h.timeframe, h.state, count(*)::float8
FROM public.coverage_holes AS h
JOIN public.job_definitions AS d ON d.id = h.job_def_id AND d.enabled
GROUP BY h.timeframe, h.state
