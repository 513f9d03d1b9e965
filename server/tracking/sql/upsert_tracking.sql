-- Record the caller's interest: one row per (user, symbol, source). Interest accumulates: the
-- timeframes of a repeated request are added to those already tracked (untrack removes rows).
-- A request that changes nothing writes nothing, so repeated chart loads cause no WAL and no
-- replicator work.
INSERT INTO public.user_symbol_tracking AS ust (user_id, symbol_id, source, priority, timeframes)
SELECT $1::uuid, s.id, $2, $3, $4::text[]
FROM public.symbols AS s
WHERE s.ticker = ANY ($5::text[])
ORDER BY s.ticker
ON CONFLICT ON CONSTRAINT user_symbol_tracking_user_symbol_source_key DO UPDATE
SET priority   = EXCLUDED.priority,
    timeframes = (SELECT array_agg(t.timeframe ORDER BY t.sort_order)
                  FROM public.timeframe_settings AS t
                  WHERE t.timeframe = ANY (ust.timeframes || EXCLUDED.timeframes)),
    updated_at = now()
WHERE ust.priority IS DISTINCT FROM EXCLUDED.priority
   OR NOT (EXCLUDED.timeframes <@ ust.timeframes);
