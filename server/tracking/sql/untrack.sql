-- Remove the caller's interest in the symbols from one source. user_id NULL is the shared
-- anonymous interest.
DELETE FROM public.user_symbol_tracking AS ust
USING public.symbols AS s
WHERE s.id = ust.symbol_id
  AND s.ticker = ANY ($3::text[])
  AND ust.user_id IS NOT DISTINCT FROM $1::uuid
  AND ust.source = $2;
