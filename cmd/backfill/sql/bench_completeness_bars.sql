-- `backfill bench completeness`: the bars of timeframe $1 at the bar starts $2 (timestamptz[],
-- from the calendar and the synthetic provider's grid) for the symbols $3 (uuid[]), and their
-- windows covered from $4 to $5, as a finished backfill leaves them. Values are constant: the
-- check reads only timestamps.
WITH bars AS (
  INSERT INTO public.ohlc_bars_v2 (symbol_id, timeframe, ts, open, high, low, close, volume, provider, is_intraday)
  SELECT s.id, $1::text, t.ts, 100, 101, 99, 100.5, 1000, 'synthetic', $1::text IN ('m15', 'h1', 'h4')
  FROM unnest($3::uuid[]) AS s (id) CROSS JOIN unnest($2::timestamptz[]) AS t (ts)
  RETURNING 1
)
INSERT INTO public.coverage_status (symbol, timeframe, symbol_id, covered, from_ts, to_ts, last_success_at, last_provider)
SELECT sy.ticker, $1::text, sy.id, tstzmultirange(tstzrange($4::timestamptz, $5::timestamptz)), $4, $5, $5, 'synthetic'
FROM public.symbols AS sy
WHERE sy.id = ANY ($3::uuid[])
