-- `backfill bench provider`: what a backfilled system holds for every enabled definition at
-- clock $3, fetched last at $4 (a minute before): one successful run per slice of its window
-- (timeframes $1, slice sizes $2 in seconds, the grid of sql/enqueue.sql: slice k is
-- [k*size, (k+1)*size) after the Unix epoch, k from floor(window start / size) to
-- ceil($3 / size) - 1, window_from the part inside the window), and its coverage_status row
-- (the window covered up to $4). No bars: the statements measured do not read them. Returns
-- the runs and coverage rows inserted.
WITH sizes AS (
  SELECT s.timeframe, s.size_s FROM unnest($1::text[], $2::bigint[]) AS s (timeframe, size_s)
),
defs AS MATERIALIZED (
  SELECT d.id, d.symbol, d.symbol_id, d.timeframe, d.job_type, s.size_s,
         $3::timestamptz - make_interval(hours => 24 * d.window_days) AS window_start
  FROM public.job_definitions AS d
  JOIN sizes AS s ON s.timeframe = d.timeframe
  WHERE d.enabled
),
runs AS (
  INSERT INTO public.job_runs
    (job_def_id, symbol, timeframe, job_type, slice_from, slice_to, window_from, status, attempt, provider,
     triggered_by, progress_percent, next_attempt_at, started_at, finished_at, created_at)
  SELECT d.id, d.symbol, d.timeframe, d.job_type, to_timestamp(k * d.size_s), to_timestamp((k + 1) * d.size_s),
         greatest(to_timestamp(k * d.size_s), d.window_start), 'success', 1, 'alpaca',
         'planner', 100, $4::timestamptz, $4::timestamptz, $4::timestamptz, $4::timestamptz
  FROM defs AS d,
       generate_series(
         floor(extract(epoch FROM d.window_start) / d.size_s)::bigint,
         ceil(extract(epoch FROM $3::timestamptz) / d.size_s)::bigint - 1
       ) AS k
  RETURNING 1
),
coverage AS (
  INSERT INTO public.coverage_status
    (symbol, timeframe, symbol_id, covered, from_ts, to_ts, last_success_at, last_rows_written, last_provider)
  SELECT DISTINCT ON (d.symbol, d.timeframe) d.symbol, d.timeframe, d.symbol_id,
         tstzmultirange(tstzrange(d.window_start, $4::timestamptz)), d.window_start, $4::timestamptz,
         $4::timestamptz, 1, 'alpaca'
  FROM defs AS d
  ORDER BY d.symbol, d.timeframe
  RETURNING 1
)
SELECT (SELECT count(*) FROM runs), (SELECT count(*) FROM coverage)
