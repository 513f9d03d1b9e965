-- `backfill bench completeness`: $1 symbols BENCH00001 … and one enabled definition per
-- timeframe of $2 (text[]) for each, with the timeframe's default window (timeframe_settings).
WITH s AS (
  INSERT INTO public.symbols (ticker)
  SELECT format('BENCH%s', lpad(n::text, 5, '0')) FROM generate_series(1, $1::int) AS n
  RETURNING id, ticker
)
INSERT INTO public.job_definitions (job_type, symbol, symbol_id, timeframe, window_days, priority, origin)
SELECT t.job_type, s.ticker, s.id, t.timeframe, t.default_window_days, 300, 'manual'
FROM s CROSS JOIN public.timeframe_settings AS t
WHERE t.timeframe = ANY ($2::text[])
