-- `backfill bench completeness`: delete one session's m15 bars ($2, a New York date) of the
-- first $1 benchmark symbols, by hand, as the issue's test does.
DELETE FROM public.ohlc_bars_v2 AS b
USING (SELECT id FROM public.symbols WHERE ticker LIKE 'BENCH%' ORDER BY ticker LIMIT $1) AS s
WHERE b.symbol_id = s.id AND b.timeframe = 'm15'
  AND b.ts >= ($2::date::timestamp AT TIME ZONE 'America/New_York')
  AND b.ts < (($2::date + 1)::timestamp AT TIME ZONE 'America/New_York')
