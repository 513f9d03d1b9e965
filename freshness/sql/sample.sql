-- A freshness sample: every (symbol, timeframe) with an enabled definition, with where its
-- fetches reached (coverage_status.to_ts, the upper bound of covered; NULL without a coverage row
-- or without a fetch), and the clock: $1, or the database's now() when NULL, in the same
-- statement, so the clock and the rows agree. Several enabled definitions of one (symbol,
-- timeframe) (a fetch and a run_forecast one) are one series of bars: DISTINCT keeps one. Without
-- any enabled definition the answer is the clock alone, with a NULL symbol.
SELECT d.symbol, d.timeframe, c.to_ts, clock.now
FROM (SELECT coalesce($1::timestamptz, now()) AS now) AS clock
LEFT JOIN (SELECT DISTINCT symbol, timeframe FROM public.job_definitions WHERE enabled) AS d ON true
LEFT JOIN public.coverage_status AS c ON c.symbol = d.symbol AND c.timeframe = d.timeframe
