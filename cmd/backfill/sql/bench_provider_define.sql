-- `backfill bench provider`: $1 symbols with tickers of four upper-case letters, AAAA, AAAB, …
-- (base 26: valid symbols for Alpaca and its fake), and one enabled definition per timeframe of
-- $2 (text[]) for each, at the timeframe's default window (timeframe_settings), priority 300
-- (watchlist). $3 (timestamptz, NULL: a fresh request) marks them as a finished backfill
-- leaves them: planned at their revision, first bars and window covered at $3.
WITH s AS (
  INSERT INTO public.symbols (ticker)
  SELECT chr(65 + (n / 17576) % 26) || chr(65 + (n / 676) % 26) || chr(65 + (n / 26) % 26) || chr(65 + n % 26)
  FROM generate_series(0, $1::int - 1) AS n
  RETURNING id, ticker
)
INSERT INTO public.job_definitions
  (job_type, symbol, symbol_id, timeframe, window_days, priority, origin, planned_revision, first_bars_at, covered_at)
SELECT t.job_type, s.ticker, s.id, t.timeframe, t.default_window_days, 300, 'manual',
       CASE WHEN $3::timestamptz IS NOT NULL THEN 1 END, $3::timestamptz, $3::timestamptz
FROM s CROSS JOIN public.timeframe_settings AS t
WHERE t.timeframe = ANY ($2::text[])
