-- The holes of symbol $1's definitions as the completeness check last found them, by timeframe
-- and session.
SELECT h.timeframe, to_char(h.session_date, 'YYYY-MM-DD'), h.range_from, h.range_to, h.kind, h.state,
       h.expected_bars, h.found_bars, h.repairs, coalesce(h.reason, '')
FROM public.coverage_holes AS h
JOIN public.job_definitions AS d ON d.id = h.job_def_id
WHERE d.symbol = $1
ORDER BY h.timeframe, h.session_date
