-- Record what a check found for definitions $1 (uuid[]) at clock $12: their figures ($2 window
-- from, $3 window to, $4..$8 sessions expected, fetched, complete, holes, suspicious; provider
-- $9), and their holes ($10 definition of each hole, $11 jsonb array of the holes' fields in the
-- same order). Holes of these definitions that the check did not find any more are healed:
-- deleted, and returned (timeframe) so they can be counted. A hole found again keeps its state,
-- repairs and detected_at; its kind and counts follow the check.
WITH figures AS (
  INSERT INTO public.coverage_completeness AS c
    (job_def_id, symbol, timeframe, provider, window_from, window_to, sessions_expected, sessions_fetched,
     sessions_complete, holes, suspicious, checked_at)
  SELECT d.id, d.symbol, d.timeframe, $9, f.window_from, f.window_to, f.expected, f.fetched, f.complete,
         f.holes, f.suspicious, $12::timestamptz
  FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[], $4::int[], $5::int[], $6::int[], $7::int[], $8::int[])
         AS f (id, window_from, window_to, expected, fetched, complete, holes, suspicious)
  JOIN public.job_definitions AS d ON d.id = f.id
  ON CONFLICT (job_def_id) DO UPDATE
    SET provider = EXCLUDED.provider, window_from = EXCLUDED.window_from, window_to = EXCLUDED.window_to,
        sessions_expected = EXCLUDED.sessions_expected, sessions_fetched = EXCLUDED.sessions_fetched,
        sessions_complete = EXCLUDED.sessions_complete, holes = EXCLUDED.holes,
        suspicious = EXCLUDED.suspicious, checked_at = EXCLUDED.checked_at
  RETURNING 1
),
found AS (
  SELECT h.id, (e ->> 'date')::date AS session_date, (e ->> 'from')::timestamptz AS range_from,
         (e ->> 'to')::timestamptz AS range_to, e ->> 'kind' AS kind, (e ->> 'expected')::int AS expected,
         (e ->> 'found')::int AS found
  FROM unnest($10::uuid[], $11::jsonb[]) AS h (id, e)
),
healed AS (
  DELETE FROM public.coverage_holes AS h
  WHERE h.job_def_id = ANY ($1::uuid[])
    AND NOT EXISTS (SELECT 1 FROM found AS f WHERE f.id = h.job_def_id AND f.session_date = h.session_date)
  RETURNING h.timeframe
),
kept AS (
  INSERT INTO public.coverage_holes AS h
    (job_def_id, session_date, symbol, timeframe, range_from, range_to, kind, expected_bars, found_bars, detected_at)
  SELECT d.id, f.session_date, d.symbol, d.timeframe, f.range_from, f.range_to, f.kind, f.expected, f.found, $12::timestamptz
  FROM found AS f JOIN public.job_definitions AS d ON d.id = f.id
  ON CONFLICT (job_def_id, session_date) DO UPDATE
    SET range_from = EXCLUDED.range_from, range_to = EXCLUDED.range_to, kind = EXCLUDED.kind,
        expected_bars = EXCLUDED.expected_bars, found_bars = EXCLUDED.found_bars
  RETURNING 1
)
SELECT timeframe FROM healed
