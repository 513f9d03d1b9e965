-- Prepare the template database of `backfill bench backfill` after it was migrated and seeded
-- with supabase/seed.sql: the seed's definitions (20 tickers × m15/h1/h4, their priorities and
-- windows) move aside into bench_backfill_seed, so each measured database starts with the seed's
-- symbols but no definition, and the benchmark makes them appear in one transaction
-- (bench_backfill_define.sql). The table lives only in the throw-away cluster.
CREATE TABLE public.bench_backfill_seed AS
SELECT job_type, symbol, symbol_id, timeframe, window_days, priority, enabled, origin
FROM public.job_definitions;

DELETE FROM public.job_definitions;
