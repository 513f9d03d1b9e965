-- Record finished runs in one statement, so in one transaction and one round trip: for each
-- run its bars, its covered range and its success. The runs come as parallel arrays, one
-- element per run, all of timeframe $5, leased to owner $2, fetched from provider $7:
--
--   $1 ids, $3 attempts, $4 symbols, $6 symbol_ids (distinct: one run per symbol),
--   $8 covered from, $9 slice_to, $10 fetched until (NULL: the run's started_at, the claim):
--      [from, least(slice_to, until)) is added to coverage_status.covered; from_ts/to_ts are
--      the bounds of the whole covered set (holes stay visible in covered), last_* describe
--      this write;
--   $18 whether to mark the definition for the completeness checker (coverage_dirty): not for
--      a refresh inside a trading session, whose session is judged once it has ended;
--
-- and the bars as parallel arrays, one element per bar: $11 the 1-based position of its run in
-- the run arrays, $12..$17 ts, open, high, low, close, volume (unique by run and ts).
-- $19 is the clock that stamps fetched_at, last_success_at and finished_at (NULL: the
-- database's now()).
--
-- Nothing is written for a run that is no longer leased as given: the run CTE locks the runs
-- that are (a concurrent reaper or cancel is waited for and then re-checked), and every write
-- joins it. Bars whose values are unchanged are not touched, so the count is what really
-- changed and a repeated fetch rewrites nothing. Returns, per run recorded, its id and the
-- number of its bars inserted or changed; a run missing lost its lease.
WITH input AS MATERIALIZED (
  SELECT *
  FROM unnest($1::uuid[], $3::int[], $4::text[], $6::uuid[], $8::timestamptz[], $9::timestamptz[],
              $10::timestamptz[], $18::boolean[])
       WITH ORDINALITY AS i (id, attempt, symbol, symbol_id, cov_from, slice_to, until, dirty, n)
),
run AS MATERIALIZED (
  SELECT i.*, r.started_at
  FROM input i JOIN public.job_runs r ON r.id = i.id
  WHERE r.status = 'running' AND r.lease_owner = $2 AND r.attempt = i.attempt
  FOR UPDATE OF r
),
bars AS (
  INSERT INTO public.ohlc_bars_v2 AS b
    (symbol_id, timeframe, ts, open, high, low, close, volume, provider, is_intraday, is_forecast, fetched_at)
  SELECT run.symbol_id, $5::text, s.ts, s.open::numeric, s.high::numeric, s.low::numeric, s.close::numeric,
         s.volume::numeric, $7::text, $5::text IN ('m15', 'h1', 'h4'), false,
         coalesce($19::timestamptz, now())
  FROM unnest($11::int[], $12::timestamptz[], $13::float8[], $14::float8[], $15::float8[], $16::float8[], $17::float8[])
         AS s (n, ts, open, high, low, close, volume)
  JOIN run ON run.n = s.n
  ON CONFLICT (symbol_id, timeframe, ts, provider, is_forecast) DO UPDATE
    SET open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
        volume = EXCLUDED.volume, fetched_at = EXCLUDED.fetched_at
    WHERE (b.open, b.high, b.low, b.close, b.volume)
          IS DISTINCT FROM (EXCLUDED.open, EXCLUDED.high, EXCLUDED.low, EXCLUDED.close, EXCLUDED.volume)
  RETURNING b.symbol_id
),
written AS (
  SELECT symbol_id, count(*)::int AS n FROM bars GROUP BY symbol_id
),
span AS (
  SELECT run.id, run.symbol, run.symbol_id, run.dirty, coalesce(w.n, 0) AS written,
         tstzmultirange(tstzrange(run.cov_from, greatest(run.cov_from,
           least(run.slice_to, coalesce(run.until, run.started_at, $19::timestamptz, now()))))) AS r
  FROM run LEFT JOIN written w ON w.symbol_id = run.symbol_id
),
-- The completeness checker looks at these definitions again (coverage_dirty).
dirty AS (
  INSERT INTO public.coverage_dirty (symbol_id, timeframe)
  SELECT span.symbol_id, $5::text FROM span WHERE span.dirty
  ON CONFLICT (symbol_id, timeframe) DO UPDATE SET seq = nextval('public.coverage_dirty_seq')
  RETURNING 1
),
coverage AS (
  INSERT INTO public.coverage_status AS c
    (symbol, timeframe, symbol_id, covered, from_ts, to_ts, last_success_at, last_rows_written, last_provider)
  SELECT span.symbol, $5::text, span.symbol_id, span.r, lower(span.r), upper(span.r),
         coalesce($19::timestamptz, now()), span.written, $7
  FROM span
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
  SET status = 'success', rows_written = span.written, provider = $7, progress_percent = 100,
      finished_at = coalesce($19::timestamptz, now()), error_code = NULL, error_message = NULL,
      lease_owner = NULL, lease_expires_at = NULL
  FROM span
  WHERE r.id = span.id
  RETURNING r.id, span.written
)
SELECT id::text, written FROM done
