-- The enabled definitions VerifyCoverage checks: of the symbols $1 (text[]; NULL: all) and the
-- timeframe $2 (NULL: all), ordered by symbol and timeframe; and which of $1 are not symbols at
-- all (so a typo is an error, not an empty answer).
SELECT d.id::text, d.symbol, NULL::text AS unknown
FROM public.job_definitions AS d
JOIN public.timeframe_settings AS t ON t.timeframe = d.timeframe
WHERE d.enabled
  AND ($1::text[] IS NULL OR d.symbol = ANY ($1::text[]))
  AND ($2::text IS NULL OR d.timeframe = $2::text)
UNION ALL
SELECT NULL, NULL, u.ticker
FROM unnest(coalesce($1::text[], '{}')) AS u (ticker)
WHERE NOT EXISTS (SELECT 1 FROM public.symbols AS s WHERE s.ticker = u.ticker)
ORDER BY 2, 1
