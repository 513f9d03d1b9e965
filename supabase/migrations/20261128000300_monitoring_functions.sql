-- Monitoring functions, callable as RPCs (PostgREST /rest/v1/rpc/...) and from psql.
--
-- Same names, arguments and output columns as the original multi-timeframe migration, so
-- existing dashboards and snippets keep working, but correct:
--   * bars and runs are aggregated in separate subqueries, never joined to each other (the
--     original joined both to one row set and multiplied the counts: 10 bars reported as 90);
--   * bars are read from the real column ts (the original read o.timestamp, which never existed);
--   * every timeframe in public.timeframe_settings (m15, h1, h4, d1, w1) gets a row, ordered by
--     timeframe_settings.sort_order (the original ranked only h1/h4/m15);
--   * a bar is counted once per timestamp, whatever the number of providers that wrote it, and
--     forecast bars are not counted.
--
-- The functions are SECURITY INVOKER: they see what the caller may see, so a signed-in user asking
-- for someone else's tracked symbols gets nothing (RLS on user_symbol_tracking). search_path is
-- empty and every name is qualified, so a caller's search_path cannot redirect them.

CREATE FUNCTION public.get_timeframe_job_stats(p_hours integer DEFAULT 1)
RETURNS TABLE (
  timeframe            text,
  total_jobs           bigint,
  queued               bigint,
  running              bigint,
  success              bigint,
  failed               bigint,
  total_bars_written   bigint,
  avg_duration_seconds numeric
)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = ''
AS $fn$
#variable_conflict use_column
BEGIN
  -- plpgsql only for this check: a plain SQL function cannot raise a readable error.
  IF p_hours IS NULL OR p_hours < 1 THEN
    RAISE EXCEPTION 'get_timeframe_job_stats: p_hours must be at least 1, got %', coalesce(p_hours::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;

  RETURN QUERY
  SELECT
    t.timeframe,
    coalesce(r.total_jobs, 0),
    coalesce(r.queued, 0),
    coalesce(r.running, 0),
    coalesce(r.success, 0),
    coalesce(r.failed, 0),
    coalesce(r.total_bars_written, 0),
    r.avg_duration_seconds
  FROM public.timeframe_settings AS t
  LEFT JOIN (
    SELECT
      jr.timeframe,
      count(*)                                        AS total_jobs,
      count(*) FILTER (WHERE jr.status = 'queued')    AS queued,
      count(*) FILTER (WHERE jr.status = 'running')   AS running,
      count(*) FILTER (WHERE jr.status = 'success')   AS success,
      count(*) FILTER (WHERE jr.status = 'failed')    AS failed,
      sum(jr.rows_written) FILTER (WHERE jr.status = 'success') AS total_bars_written,
      round(avg(extract(epoch FROM jr.finished_at - jr.started_at))
              FILTER (WHERE jr.status = 'success'), 3) AS avg_duration_seconds
    FROM public.job_runs AS jr
    -- Active runs always count; finished ones when they last changed inside the window. Keyed on
    -- updated_at, not created_at: a run created yesterday and finished a minute ago is recent work.
    WHERE jr.status IN ('queued', 'running')
       OR jr.updated_at >= now() - make_interval(hours => p_hours)
    GROUP BY jr.timeframe
  ) AS r ON r.timeframe = t.timeframe
  ORDER BY t.sort_order;
END
$fn$;

COMMENT ON FUNCTION public.get_timeframe_job_stats(integer) IS
  'One row per timeframe in timeframe_settings (all five, ordered by sort_order, zeros when idle). '
  'Counts job_runs (slices, not definitions) that are queued or running now, or whose updated_at is '
  'within the last p_hours hours (p_hours >= 1, else error 22023). total_bars_written = sum(rows_written) '
  'and avg_duration_seconds = avg(finished_at - started_at) in seconds rounded to 3 places, both over '
  'success runs only (avg is NULL when there are none). Cancelled runs count only in total_jobs.';

CREATE FUNCTION public.get_symbol_timeframe_coverage(p_symbol text)
RETURNS TABLE (
  timeframe     text,
  bars_count    bigint,
  earliest_bar  timestamptz,
  latest_bar    timestamptz,
  coverage_days numeric,
  last_fetch    timestamptz,
  job_enabled   boolean,
  job_priority  integer
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
    jd.priority
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
  WHERE s.ticker = p_symbol
  ORDER BY t.sort_order;
$fn$;

COMMENT ON FUNCTION public.get_symbol_timeframe_coverage(text) IS
  'For the symbol whose ticker equals p_symbol exactly: one row per timeframe in timeframe_settings, '
  'ordered by sort_order; no rows for an unknown ticker. bars_count counts distinct ts of non-forecast '
  'bars (a timestamp written by two providers counts once); earliest_bar/latest_bar and coverage_days '
  '(latest - earliest in days, 2 places) are NULL without bars. last_fetch = coverage_status.last_success_at; '
  'job_enabled/job_priority come from the job_definitions row with the timeframe''s job_type, NULL when none.';

CREATE FUNCTION public.get_user_tracked_symbols_status(p_user_id uuid)
RETURNS TABLE (
  symbol       text,
  source       text,
  priority     integer,
  tracked_at   timestamptz,
  m15_bars     bigint,
  h1_bars      bigint,
  h4_bars      bigint,
  jobs_pending bigint,
  jobs_running bigint,
  d1_bars      bigint,
  w1_bars      bigint
)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = ''
AS $fn$
  SELECT
    s.ticker,
    u.source,
    u.priority,
    u.created_at,
    b.m15_bars,
    b.h1_bars,
    b.h4_bars,
    j.jobs_pending,
    j.jobs_running,
    b.d1_bars,
    b.w1_bars
  FROM public.user_symbol_tracking AS u
  JOIN public.symbols AS s ON s.id = u.symbol_id
  -- Bars and runs are aggregated apart, each to one row per tracking row: joining them to each
  -- other is what multiplied the original's counts.
  CROSS JOIN LATERAL (
    SELECT
      count(DISTINCT o.ts) FILTER (WHERE o.timeframe = 'm15') AS m15_bars,
      count(DISTINCT o.ts) FILTER (WHERE o.timeframe = 'h1')  AS h1_bars,
      count(DISTINCT o.ts) FILTER (WHERE o.timeframe = 'h4')  AS h4_bars,
      count(DISTINCT o.ts) FILTER (WHERE o.timeframe = 'd1')  AS d1_bars,
      count(DISTINCT o.ts) FILTER (WHERE o.timeframe = 'w1')  AS w1_bars
    FROM public.ohlc_bars_v2 AS o
    WHERE o.symbol_id = u.symbol_id
      AND NOT o.is_forecast
  ) AS b
  CROSS JOIN LATERAL (
    SELECT
      count(*) FILTER (WHERE jr.status = 'queued')  AS jobs_pending,
      count(*) FILTER (WHERE jr.status = 'running') AS jobs_running
    FROM public.job_definitions AS jd
    JOIN public.job_runs AS jr ON jr.job_def_id = jd.id
    WHERE jd.symbol_id = u.symbol_id
      AND jr.status IN ('queued', 'running')
  ) AS j
  WHERE u.user_id IS NOT DISTINCT FROM p_user_id
  ORDER BY u.priority DESC, s.ticker, u.source;
$fn$;

COMMENT ON FUNCTION public.get_user_tracked_symbols_status(uuid) IS
  'One row per user_symbol_tracking row of p_user_id (NULL selects the anonymous rows), ordered by '
  'priority desc, symbol, source; tracked_at is the tracking row''s created_at. *_bars count distinct ts '
  'of the symbol''s non-forecast bars per timeframe; jobs_pending/jobs_running count queued/running '
  'job_runs of every definition of the symbol (all timeframes). A symbol tracked from two sources gives '
  'two rows with the same counts. SECURITY INVOKER: RLS limits a signed-in caller to their own rows.';

REVOKE EXECUTE ON FUNCTION
  public.get_timeframe_job_stats(integer),
  public.get_symbol_timeframe_coverage(text),
  public.get_user_tracked_symbols_status(uuid)
FROM PUBLIC, anon;

GRANT EXECUTE ON FUNCTION
  public.get_timeframe_job_stats(integer),
  public.get_symbol_timeframe_coverage(text),
  public.get_user_tracked_symbols_status(uuid)
TO authenticated, service_role;
