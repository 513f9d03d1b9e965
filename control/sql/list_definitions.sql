-- Job definitions, ordered by symbol, timeframe (timeframe_settings.sort_order) and job type, the
-- unique key. Filters: $1 symbol, $2 timeframe, $3 enabled, each ignored when NULL. Keyset: only
-- rows after ($4 symbol, $5 sort order, $6 job type) when $4 is not NULL. At most $7 rows.
SELECT d.id::text, d.symbol, d.timeframe, d.job_type, d.window_days, d.priority, d.enabled, d.origin,
       coalesce(d.disabled_reason, ''), d.requested_at, d.first_bars_at, d.covered_at, d.created_at,
       d.updated_at, t.sort_order
FROM public.job_definitions AS d
JOIN public.timeframe_settings AS t ON t.timeframe = d.timeframe
WHERE ($1::text IS NULL OR d.symbol = $1::text)
  AND ($2::text IS NULL OR d.timeframe = $2::text)
  AND ($3::boolean IS NULL OR d.enabled = $3::boolean)
  AND ($4::text IS NULL OR (d.symbol, t.sort_order, d.job_type) > ($4::text, $5::smallint, $6::text))
ORDER BY d.symbol, t.sort_order, d.job_type
LIMIT $7
