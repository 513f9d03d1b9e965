-- Clear the marks a pass took ($1 symbol ids, $2 timeframes, $3 seqs): only those not marked
-- again since (a write during the pass moved seq, so its definition is checked next time).
DELETE FROM public.coverage_dirty AS c
USING unnest($1::uuid[], $2::text[], $3::bigint[]) AS m (symbol_id, timeframe, seq)
WHERE c.symbol_id = m.symbol_id AND c.timeframe = m.timeframe AND c.seq = m.seq
