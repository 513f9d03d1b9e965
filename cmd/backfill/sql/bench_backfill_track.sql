-- The measured event of `backfill bench backfill` (the default, --via tracking): the first $1
-- seed tickers (alphabetical) become tracked in one transaction, as one sync-user-symbols call
-- of the app would: anonymous watchlist interest in m15, h1 and h4. The replicator turns the
-- rows into 3 job definitions each (windows from timeframe_settings, priority 300) and notifies
-- the orchestrator. One statement, so one round trip.
--
-- $1 integer  how many seed tickers
WITH tickers AS (
  SELECT DISTINCT symbol, symbol_id FROM public.bench_backfill_seed ORDER BY symbol LIMIT $1::integer
),
tracked AS (
  INSERT INTO public.user_symbol_tracking (user_id, symbol_id, source, priority, timeframes)
  SELECT NULL, t.symbol_id, 'watchlist', 300, ARRAY['m15', 'h1', 'h4']
  FROM tickers AS t
  RETURNING 1
)
SELECT count(*) FROM tracked;
