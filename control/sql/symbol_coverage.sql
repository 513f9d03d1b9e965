-- The rows of public.get_symbol_timeframe_coverage($1 symbol), as they are; coverage_days and
-- completeness are numeric, read as float8.
SELECT c.timeframe, c.bars_count, c.earliest_bar, c.latest_bar, c.coverage_days::float8, c.last_fetch,
       c.job_enabled, c.job_priority, c.sessions_expected, c.sessions_fetched, c.sessions_complete,
       c.completeness::float8, c.checked_at
FROM public.get_symbol_timeframe_coverage($1::text) WITH ORDINALITY AS c
ORDER BY c.ordinality -- the function's own order
