-- One user transaction of `backfill bench cdc`: a new symbol and an anonymous watchlist tracking
-- row for it (default timeframes m15, h1, h4), in one statement, so one round trip and one
-- transaction. The symbol is new, so the job definitions of the symbol are created because of
-- exactly this row. It returns the WAL insert position inside the transaction: the transaction's
-- commit ends after it, which is what the benchmark waits for with the replicator's WaitApplied.
--
-- $1 text  ticker of the new symbol
WITH s AS (
  INSERT INTO public.symbols (ticker, description)
  VALUES ($1::text, 'backfill bench cdc')
  RETURNING id
)
INSERT INTO public.user_symbol_tracking (user_id, symbol_id, source, priority)
SELECT NULL, s.id, 'watchlist', 300
FROM s
RETURNING pg_catalog.pg_current_wal_insert_lsn()::text;
