-- `backfill bench completeness`: bars stored and the bars table's size with its indexes.
SELECT (SELECT count(*) FROM public.ohlc_bars_v2), pg_size_pretty(pg_total_relation_size('public.ohlc_bars_v2'))
