-- Move the staged bars of symbol $1, timeframe $2, provider $3 into ohlc_bars_v2. Rows whose
-- values are unchanged are not touched, so the affected count is what really changed and a
-- repeated fetch rewrites nothing. DISTINCT ON guards the key should a provider repeat a ts.
INSERT INTO public.ohlc_bars_v2 AS b
  (symbol_id, timeframe, ts, open, high, low, close, volume, provider, is_intraday, is_forecast, fetched_at)
SELECT DISTINCT ON (s.ts)
       $1::uuid, $2::text, s.ts, s.open::numeric, s.high::numeric, s.low::numeric, s.close::numeric,
       s.volume::numeric, $3::text, $2::text IN ('m15', 'h1', 'h4'), false, now()
FROM backfill_bars_stage s
ORDER BY s.ts
ON CONFLICT (symbol_id, timeframe, ts, provider, is_forecast) DO UPDATE
  SET open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
      volume = EXCLUDED.volume, fetched_at = EXCLUDED.fetched_at
  WHERE (b.open, b.high, b.low, b.close, b.volume)
        IS DISTINCT FROM (EXCLUDED.open, EXCLUDED.high, EXCLUDED.low, EXCLUDED.close, EXCLUDED.volume)
