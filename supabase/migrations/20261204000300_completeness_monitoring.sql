-- get_symbol_timeframe_coverage reports completeness truthfully: besides the bars and the last
-- fetch, what the completeness checker last found for the definition (coverage_completeness):
-- the sessions of its window that had ended, how many were fetched and how many hold their
-- bars, completeness = complete / expected, and its holes (coverage_holes, any state). All NULL
-- while the definition has not been checked (or has no definition). A new return type needs
-- the function dropped and created again; its grants are restored below.
DROP FUNCTION public.get_symbol_timeframe_coverage(text);

CREATE FUNCTION public.get_symbol_timeframe_coverage(p_symbol text)
RETURNS TABLE (
  timeframe         text,
  bars_count        bigint,
  earliest_bar      timestamptz,
  latest_bar        timestamptz,
  coverage_days     numeric,
  last_fetch        timestamptz,
  job_enabled       boolean,
  job_priority      integer,
  sessions_expected integer,
  sessions_fetched  integer,
  sessions_complete integer,
  completeness      numeric,
  holes             bigint,
  checked_at        timestamptz
)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = ''
AS $fn$
  SELECT
    t.timeframe,
    b.bars_count,
    b.earliest_bar,
    b.latest_bar,
    round(extract(epoch FROM b.latest_bar - b.earliest_bar) / 86400, 2),
    cs.last_success_at,
    jd.enabled,
    jd.priority,
    cc.sessions_expected,
    cc.sessions_fetched,
    cc.sessions_complete,
    CASE WHEN cc.job_def_id IS NULL THEN NULL
         WHEN cc.sessions_expected = 0 THEN 1::numeric
         ELSE round(cc.sessions_complete::numeric / cc.sessions_expected, 4) END,
    CASE WHEN cc.job_def_id IS NULL THEN NULL
         ELSE (SELECT count(*) FROM public.coverage_holes AS h WHERE h.job_def_id = jd.id) END,
    cc.checked_at
  FROM public.symbols AS s
  CROSS JOIN public.timeframe_settings AS t
  CROSS JOIN LATERAL (
    SELECT
      count(DISTINCT o.ts) AS bars_count,
      min(o.ts)            AS earliest_bar,
      max(o.ts)            AS latest_bar
    FROM public.ohlc_bars_v2 AS o
    WHERE o.symbol_id = s.id
      AND o.timeframe = t.timeframe
      AND NOT o.is_forecast
  ) AS b
  LEFT JOIN public.coverage_status AS cs
    ON cs.symbol = s.ticker AND cs.timeframe = t.timeframe
  -- At most one row: (symbol, timeframe, job_type) is the unique key.
  LEFT JOIN public.job_definitions AS jd
    ON jd.symbol = s.ticker AND jd.timeframe = t.timeframe AND jd.job_type = t.job_type
  LEFT JOIN public.coverage_completeness AS cc
    ON cc.job_def_id = jd.id
  WHERE s.ticker = p_symbol
  ORDER BY t.sort_order;
$fn$;

COMMENT ON FUNCTION public.get_symbol_timeframe_coverage(text) IS
  'For the symbol whose ticker equals p_symbol exactly: one row per timeframe in timeframe_settings, '
  'ordered by sort_order; no rows for an unknown ticker. bars_count counts distinct ts of non-forecast '
  'bars (a timestamp written by two providers counts once); earliest_bar/latest_bar and coverage_days '
  '(latest - earliest in days, 2 places) are NULL without bars. last_fetch = coverage_status.last_success_at; '
  'job_enabled/job_priority come from the job_definitions row with the timeframe''s job_type, NULL when none. '
  'sessions_expected/fetched/complete, completeness (complete / expected, 4 places; 1 when nothing is expected), '
  'holes (coverage_holes rows, any state) and checked_at are what the completeness checker last found for that '
  'definition; NULL until it has been checked. "Fetched" is not "complete": a session whose bars were deleted '
  'or that the provider answered without is fetched, not complete, and a hole.';

REVOKE EXECUTE ON FUNCTION public.get_symbol_timeframe_coverage(text) FROM PUBLIC, anon;
GRANT EXECUTE ON FUNCTION public.get_symbol_timeframe_coverage(text) TO authenticated, service_role;
