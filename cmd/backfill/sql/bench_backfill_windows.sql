-- The work of `backfill bench backfill`, for its header: the seed's definitions of the first $1
-- tickers (alphabetical) per timeframe, with their window and priority.
--
-- $1 integer  how many seed tickers
WITH tickers AS (
  SELECT DISTINCT symbol FROM public.bench_backfill_seed ORDER BY symbol LIMIT $1::integer
)
SELECT s.timeframe, count(*) AS defs, min(s.window_days) AS window_days, max(s.priority) AS priority
FROM public.bench_backfill_seed AS s
JOIN tickers AS t ON t.symbol = s.symbol
GROUP BY s.timeframe
ORDER BY max(s.priority) DESC, s.timeframe;
