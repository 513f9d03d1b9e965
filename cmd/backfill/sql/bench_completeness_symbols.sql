-- `backfill bench completeness`: the benchmark's symbol ids, in order.
SELECT id::text FROM public.symbols WHERE ticker LIKE 'BENCH%' ORDER BY ticker
