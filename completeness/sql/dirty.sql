-- Up to $1 marks of coverage_dirty, oldest first, with the enabled definition each one names
-- (NULL when none: the mark is only cleared).
SELECT m.symbol_id::text, m.timeframe, m.seq, d.id::text
FROM (SELECT * FROM public.coverage_dirty ORDER BY seq LIMIT $1) AS m
LEFT JOIN public.job_definitions AS d
  ON d.symbol_id = m.symbol_id AND d.timeframe = m.timeframe AND d.enabled
