-- One sample of `backfill bench backfill`'s idle pickup: once the backfill is done and every
-- worker is idle, a new symbol $1 gets tracked (--via tracking: anonymous watchlist interest in
-- h1, through the replicator) or a definition (--via definitions: h1, one day, with the
-- replicator's notification on channel $3), in one statement. The benchmark then waits for its
-- first claim (bench_backfill_pickup_wait.sql).
--
-- $1 text     ticker of the new symbol
-- $2 boolean  true: a tracking row; false: a definition
-- $3 text     notification channel (replicator.NotifyChannel)
WITH s AS (
  INSERT INTO public.symbols (ticker, description)
  VALUES ($1::text, 'backfill bench pickup')
  RETURNING id, ticker
),
tracked AS (
  INSERT INTO public.user_symbol_tracking (user_id, symbol_id, source, priority, timeframes)
  SELECT NULL, s.id, 'watchlist', 300, ARRAY['h1'] FROM s WHERE $2::boolean
  RETURNING 1
),
defined AS (
  INSERT INTO public.job_definitions (job_type, symbol, symbol_id, timeframe, window_days, priority, enabled, origin)
  SELECT 'fetch_intraday', s.ticker, s.id, 'h1', 1, 300, true, 'manual' FROM s WHERE NOT $2::boolean
  RETURNING 1
)
SELECT (SELECT count(*) FROM tracked) + (SELECT count(*) FROM defined),
       CASE WHEN NOT $2::boolean THEN pg_catalog.pg_notify($3::text, '') IS NULL END;
