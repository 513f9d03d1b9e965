-- Add [slice_from $4, least(slice_to $5, fetched_until $6)) to the covered ranges of symbol $1,
-- timeframe $2 (symbol_id $3), and refresh the summary columns: from_ts/to_ts are the bounds
-- of the whole covered set (holes stay visible in covered), last_* describe this write.
WITH add AS (
  SELECT tstzmultirange(tstzrange($4::timestamptz, greatest($4::timestamptz, least($5::timestamptz, $6::timestamptz)))) AS r
)
INSERT INTO public.coverage_status AS c
  (symbol, timeframe, symbol_id, covered, from_ts, to_ts, last_success_at, last_rows_written, last_provider)
SELECT $1, $2, $3::uuid, add.r, lower(add.r), upper(add.r), now(), $7, $8
FROM add
ON CONFLICT (symbol, timeframe) DO UPDATE
  SET covered = c.covered + EXCLUDED.covered,
      from_ts = lower(c.covered + EXCLUDED.covered),
      to_ts = upper(c.covered + EXCLUDED.covered),
      symbol_id = EXCLUDED.symbol_id,
      last_success_at = EXCLUDED.last_success_at,
      last_rows_written = EXCLUDED.last_rows_written,
      last_provider = EXCLUDED.last_provider
