-- The measured event of `backfill bench backfill`: the seed's definitions of the first $1
-- tickers (alphabetical) appear in one transaction, with a notification on the orchestrator's
-- channel $2 in the same transaction, as the replicator sends after applying tracking changes
-- (its own latency is what `bench cdc` measures). One statement, so one round trip; the NOTIFY
-- is delivered at commit.
--
-- $1 integer  how many seed tickers
-- $2 text     notification channel (replicator.NotifyChannel)
WITH tickers AS (
  SELECT DISTINCT symbol FROM public.bench_backfill_seed ORDER BY symbol LIMIT $1::integer
),
defined AS (
  INSERT INTO public.job_definitions (job_type, symbol, symbol_id, timeframe, window_days, priority, enabled, origin)
  SELECT s.job_type, s.symbol, s.symbol_id, s.timeframe, s.window_days, s.priority, s.enabled, s.origin
  FROM public.bench_backfill_seed AS s
  JOIN tickers AS t ON t.symbol = s.symbol
  RETURNING 1
)
SELECT count(*) AS defined, pg_catalog.pg_notify($2::text, '') IS NULL AS notified
FROM defined;
