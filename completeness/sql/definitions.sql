-- The enabled definitions among $1 (uuid[]), with their fetched ranges (coverage_status.covered)
-- as two arrays of bounds in order.
SELECT d.id::text, d.symbol, d.symbol_id::text, d.timeframe, d.window_days,
       coalesce((SELECT array_agg(lower(x) ORDER BY lower(x)) FROM unnest(c.covered) AS x), '{}') AS covered_from,
       coalesce((SELECT array_agg(upper(x) ORDER BY lower(x)) FROM unnest(c.covered) AS x), '{}') AS covered_to
FROM public.job_definitions AS d
LEFT JOIN public.coverage_status AS c ON c.symbol = d.symbol AND c.timeframe = d.timeframe
WHERE d.enabled AND d.id = ANY ($1::uuid[])
ORDER BY d.id
