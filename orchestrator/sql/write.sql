-- Record a finished slice of run $1 (leased to owner $2 at attempt $3) in one statement, so in
-- one transaction and one round trip: the bars, the covered range, and the run's success.
--
--   $4 symbol, $5 timeframe, $6 symbol_id, $7 provider,
--   $8 covered from, $9 slice_to, $10 fetched until (NULL: the run's started_at, the claim):
--      [$8, least($9, $10)) is added to coverage_status.covered; from_ts/to_ts are the bounds of
--      the whole covered set (holes stay visible in covered), last_* describe this write;
--   $11..$16 the bars as parallel arrays (ts, open, high, low, close, volume), unique by ts;
--   $17 the clock that stamps fetched_at, last_success_at and finished_at (NULL: the
--      database's now());
--   $18 whether to mark the definition for the completeness checker (coverage_dirty): not for
--      a refresh inside a trading session, whose session is judged once it has ended.
--
-- Nothing is written unless the run is still leased as given: the run CTE locks it (a
-- concurrent reaper or cancel is waited for and then re-checked), and every write depends on
-- it. Bars whose values are unchanged are not touched, so the count is what really changed and
-- a repeated fetch rewrites nothing. The definition is marked for the completeness checker. Returns the number of runs marked (0: the lease was lost)
-- and of bars inserted or changed.
WITH run AS MATERIALIZED (
  SELECT id, started_at FROM public.job_runs
  WHERE id = $1::uuid AND status = 'running' AND lease_owner = $2 AND attempt = $3
  FOR UPDATE
),
bars AS (
  INSERT INTO public.ohlc_bars_v2 AS b
    (symbol_id, timeframe, ts, open, high, low, close, volume, provider, is_intraday, is_forecast, fetched_at)
  SELECT $6::uuid, $5::text, s.ts, s.open::numeric, s.high::numeric, s.low::numeric, s.close::numeric,
         s.volume::numeric, $7::text, $5::text IN ('m15', 'h1', 'h4'), false,
         coalesce($17::timestamptz, now())
  FROM unnest($11::timestamptz[], $12::float8[], $13::float8[], $14::float8[], $15::float8[], $16::float8[])
         AS s (ts, open, high, low, close, volume)
  WHERE EXISTS (SELECT 1 FROM run)
  ON CONFLICT (symbol_id, timeframe, ts, provider, is_forecast) DO UPDATE
    SET open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
        volume = EXCLUDED.volume, fetched_at = EXCLUDED.fetched_at
    WHERE (b.open, b.high, b.low, b.close, b.volume)
          IS DISTINCT FROM (EXCLUDED.open, EXCLUDED.high, EXCLUDED.low, EXCLUDED.close, EXCLUDED.volume)
  RETURNING 1
),
written AS (
  SELECT count(*)::int AS n FROM bars
),
span AS (
  SELECT tstzmultirange(tstzrange($8::timestamptz, greatest($8::timestamptz,
           least($9::timestamptz, coalesce($10::timestamptz, run.started_at, $17::timestamptz, now()))))) AS r
  FROM run
),
-- The completeness checker looks at this definition again (coverage_dirty).
dirty AS (
  INSERT INTO public.coverage_dirty (symbol_id, timeframe)
  SELECT $6::uuid, $5::text FROM run WHERE $18::boolean
  ON CONFLICT (symbol_id, timeframe) DO UPDATE SET seq = nextval('public.coverage_dirty_seq')
  RETURNING 1
),
coverage AS (
  INSERT INTO public.coverage_status AS c
    (symbol, timeframe, symbol_id, covered, from_ts, to_ts, last_success_at, last_rows_written, last_provider)
  SELECT $4, $5, $6::uuid, span.r, lower(span.r), upper(span.r), coalesce($17::timestamptz, now()), written.n, $7
  FROM span, written
  ON CONFLICT (symbol, timeframe) DO UPDATE
    SET covered = c.covered + EXCLUDED.covered,
        from_ts = lower(c.covered + EXCLUDED.covered),
        to_ts = upper(c.covered + EXCLUDED.covered),
        symbol_id = EXCLUDED.symbol_id,
        last_success_at = EXCLUDED.last_success_at,
        last_rows_written = EXCLUDED.last_rows_written,
        last_provider = EXCLUDED.last_provider
  RETURNING 1
),
done AS (
  UPDATE public.job_runs AS r
  SET status = 'success', rows_written = written.n, provider = $7, progress_percent = 100,
      finished_at = coalesce($17::timestamptz, now()), error_code = NULL, error_message = NULL,
      lease_owner = NULL, lease_expires_at = NULL
  FROM run, written
  WHERE r.id = run.id
  RETURNING 1
)
SELECT (SELECT count(*) FROM done), (SELECT n FROM written)
