-- The stored bars of definitions $1 (uuid[]) from their window starts $2 (timestamptz[]) to the
-- clock $5, by provider $4, grouped by session date in the zones $3 (text[]: America/New_York,
-- or UTC for crypto): per date the count and the first and last bar start. The bars' key index
-- (symbol_id, timeframe, ts, …) serves each definition's range.
SELECT w.id::text, to_char(b.ts AT TIME ZONE w.zone, 'YYYY-MM-DD') AS day,
       count(*)::int, min(b.ts), max(b.ts)
FROM unnest($1::uuid[], $2::timestamptz[], $3::text[]) AS w (id, window_from, zone)
JOIN public.job_definitions AS d ON d.id = w.id
JOIN public.ohlc_bars_v2 AS b
  ON b.symbol_id = d.symbol_id AND b.timeframe = d.timeframe
 AND b.ts >= w.window_from AND b.ts < $5::timestamptz
 AND b.provider = $4 AND NOT b.is_forecast
GROUP BY w.id, day
