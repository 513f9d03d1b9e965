-- Multi-timeframe backfill monitoring: the ten queries of the original
-- backend/supabase/monitor_multi_timeframe.sql, fixed for this schema, and an eleventh on
-- completeness.
--
-- Run the whole file with `psql "$DATABASE_URL" -f supabase/monitor_multi_timeframe.sql`, or send it
-- as one multi-statement string. Plain SELECTs only: read-only, safe on a live database.
--
-- Conventions throughout:
--   * a bar is a distinct (symbol, timeframe, ts) among non-forecast rows of ohlc_bars_v2: the same
--     timestamp written by two providers counts once, forecasts never count;
--   * every timeframe of public.timeframe_settings (m15, h1, h4, d1, w1) is listed, in sort_order;
--   * bars and job runs are aggregated in separate subqueries before any join, so no count is
--     multiplied by another table's rows;
--   * "in the last hour" means the run's updated_at (it last changed then); queued and running runs
--     are current state and always count.

-- 1. Bar coverage for AAPL, MSFT, NVDA, TSLA, GOOGL: bars and earliest/latest bar per timeframe.
-- Was wrong: read o.timestamp (no such column; it is ts) so it failed, counted every provider's copy
-- of a bar and forecasts, and listed m15/h1/h4 only.
SELECT
  w.ticker,
  coalesce(b.m15_bars, 0) AS m15_bars,
  coalesce(b.h1_bars, 0)  AS h1_bars,
  coalesce(b.h4_bars, 0)  AS h4_bars,
  coalesce(b.d1_bars, 0)  AS d1_bars,
  coalesce(b.w1_bars, 0)  AS w1_bars,
  b.m15_earliest, b.m15_latest,
  b.h1_earliest,  b.h1_latest,
  b.h4_earliest,  b.h4_latest,
  b.d1_earliest,  b.d1_latest,
  b.w1_earliest,  b.w1_latest
FROM (VALUES (1, 'AAPL'), (2, 'MSFT'), (3, 'NVDA'), (4, 'TSLA'), (5, 'GOOGL')) AS w (ord, ticker)
LEFT JOIN public.symbols AS s ON s.ticker = w.ticker
LEFT JOIN LATERAL (
  SELECT
    count(DISTINCT o.ts) FILTER (WHERE o.timeframe = 'm15') AS m15_bars,
    count(DISTINCT o.ts) FILTER (WHERE o.timeframe = 'h1')  AS h1_bars,
    count(DISTINCT o.ts) FILTER (WHERE o.timeframe = 'h4')  AS h4_bars,
    count(DISTINCT o.ts) FILTER (WHERE o.timeframe = 'd1')  AS d1_bars,
    count(DISTINCT o.ts) FILTER (WHERE o.timeframe = 'w1')  AS w1_bars,
    min(o.ts) FILTER (WHERE o.timeframe = 'm15') AS m15_earliest,
    max(o.ts) FILTER (WHERE o.timeframe = 'm15') AS m15_latest,
    min(o.ts) FILTER (WHERE o.timeframe = 'h1')  AS h1_earliest,
    max(o.ts) FILTER (WHERE o.timeframe = 'h1')  AS h1_latest,
    min(o.ts) FILTER (WHERE o.timeframe = 'h4')  AS h4_earliest,
    max(o.ts) FILTER (WHERE o.timeframe = 'h4')  AS h4_latest,
    min(o.ts) FILTER (WHERE o.timeframe = 'd1')  AS d1_earliest,
    max(o.ts) FILTER (WHERE o.timeframe = 'd1')  AS d1_latest,
    min(o.ts) FILTER (WHERE o.timeframe = 'w1')  AS w1_earliest,
    max(o.ts) FILTER (WHERE o.timeframe = 'w1')  AS w1_latest
  FROM public.ohlc_bars_v2 AS o
  WHERE o.symbol_id = s.id
    AND NOT o.is_forecast
) AS b ON true
ORDER BY w.ord;

-- 2. Job statistics per timeframe over the last hour.
-- Was wrong: the function windowed on created_at, dropped runs without a definition and ranked only
-- h1/h4/m15 (d1/w1 sorted last with a NULL rank); the fixed function lists all five in order.
SELECT * FROM public.get_timeframe_job_stats(1);

-- 3. Job definitions per timeframe: how many, how many enabled, and their priorities.
-- Was wrong: filtered to m15/h1/h4 only, hiding d1/w1 definitions; here every timeframe has a row.
SELECT
  t.timeframe,
  count(jd.id)                              AS total_jobs,
  count(jd.id) FILTER (WHERE jd.enabled)    AS enabled_jobs,
  round(avg(jd.priority), 1)                AS avg_priority,
  min(jd.priority)                          AS min_priority,
  max(jd.priority)                          AS max_priority
FROM public.timeframe_settings AS t
LEFT JOIN public.job_definitions AS jd ON jd.timeframe = t.timeframe
GROUP BY t.timeframe, t.sort_order
ORDER BY t.sort_order;

-- 4. Coverage summary per timeframe: symbols covered, span, fetch times and bars actually stored.
-- Was wrong: total_bars_written summed last_rows_written, i.e. only each symbol's last slice; it is
-- now the bar count in ohlc_bars_v2. avg_covered_days (exact fetched ranges, holes excluded) is new.
SELECT
  t.timeframe,
  coalesce(c.symbols_with_coverage, 0) AS symbols_with_coverage,
  c.avg_coverage_days,
  c.avg_covered_days,
  c.oldest_fetch,
  c.newest_fetch,
  coalesce(b.total_bars_written, 0)    AS total_bars_written
FROM public.timeframe_settings AS t
LEFT JOIN (
  SELECT
    cs.timeframe,
    count(*) AS symbols_with_coverage,
    round(avg(extract(epoch FROM cs.to_ts - cs.from_ts) / 86400), 2) AS avg_coverage_days,
    round(avg((SELECT coalesce(sum(extract(epoch FROM upper(r) - lower(r))), 0)
               FROM unnest(cs.covered) AS r) / 86400), 2)             AS avg_covered_days,
    min(cs.last_success_at) AS oldest_fetch,
    max(cs.last_success_at) AS newest_fetch
  FROM public.coverage_status AS cs
  GROUP BY cs.timeframe
) AS c ON c.timeframe = t.timeframe
LEFT JOIN (
  SELECT d.timeframe, count(*) AS total_bars_written
  FROM (
    SELECT DISTINCT o.symbol_id, o.timeframe, o.ts
    FROM public.ohlc_bars_v2 AS o
    WHERE NOT o.is_forecast
  ) AS d
  GROUP BY d.timeframe
) AS b ON b.timeframe = t.timeframe
ORDER BY t.sort_order;

-- 5. Symbol tracking summary by source (all users, anonymous included).
-- Was wrong: nothing in the query, but the table was never written after a144bde; it now also lists
-- sources with no rows and counts the anonymous (user_id NULL) entries.
SELECT
  src.source,
  count(DISTINCT u.symbol_id)                   AS unique_symbols,
  count(u.id)                                   AS total_tracking_entries,
  count(u.id) FILTER (WHERE u.user_id IS NULL)  AS anonymous_entries,
  round(avg(u.priority), 1)                     AS avg_priority,
  min(u.created_at)                             AS first_tracked,
  max(u.updated_at)                             AS last_updated
FROM (VALUES (1, 'watchlist'), (2, 'chart_view'), (3, 'recent_search')) AS src (ord, source)
LEFT JOIN public.user_symbol_tracking AS u ON u.source = src.source
GROUP BY src.source, src.ord
ORDER BY src.ord;

-- 6. Coverage per timeframe for one symbol (AAPL).
-- Was wrong: the function read o.timestamp (every call failed) and, before ts became timestamptz,
-- returned timestamp for a timestamptz column; it also listed m15/h1/h4 only.
SELECT * FROM public.get_symbol_timeframe_coverage('AAPL');

-- 7. Failed runs in the last hour (latest 20), including failed attempts waiting for a retry.
-- Was wrong: filtered to m15/h1/h4 and on created_at, so a run created earlier that failed just now
-- was missed; it now covers every timeframe and keys on when the run last changed.
SELECT
  jr.symbol,
  jr.timeframe,
  jr.status,
  jr.error_message,
  jr.error_code,
  jr.attempt,
  jr.created_at,
  jr.finished_at,
  round(extract(epoch FROM jr.finished_at - jr.started_at), 3) AS duration_seconds,
  jr.next_attempt_at
FROM public.job_runs AS jr
WHERE (jr.status = 'failed'
       OR (jr.status = 'queued' AND (jr.error_code IS NOT NULL OR jr.error_message IS NOT NULL)))
  AND jr.updated_at >= now() - interval '1 hour'
ORDER BY jr.updated_at DESC, jr.symbol, jr.timeframe
LIMIT 20;

-- 8. Top 50 enabled definitions still awaiting backfill, in claim order (priority first).
-- Was wrong: nothing fatal (its run counts were pre-aggregated), but it listed every enabled
-- definition, finished or not; now only those with no coverage yet, coverage not reaching back
-- window_days, or runs queued/running.
SELECT
  jd.symbol,
  jd.timeframe,
  jd.priority,
  jd.enabled,
  jd.window_days,
  cs.last_success_at,
  cs.from_ts,
  cs.to_ts,
  coalesce(r.pending_jobs, 0) AS pending_jobs,
  coalesce(r.running_jobs, 0) AS running_jobs
FROM public.job_definitions AS jd
LEFT JOIN public.coverage_status AS cs
  ON cs.symbol = jd.symbol AND cs.timeframe = jd.timeframe
LEFT JOIN (
  SELECT
    jr.job_def_id,
    count(*) FILTER (WHERE jr.status = 'queued')  AS pending_jobs,
    count(*) FILTER (WHERE jr.status = 'running') AS running_jobs
  FROM public.job_runs AS jr
  WHERE jr.status IN ('queued', 'running')
  GROUP BY jr.job_def_id
) AS r ON r.job_def_id = jd.id
WHERE jd.enabled
  AND (cs.from_ts IS NULL
       OR cs.from_ts > now() - make_interval(days => jd.window_days)
       OR r.job_def_id IS NOT NULL)
ORDER BY jd.priority DESC, cs.last_success_at ASC NULLS FIRST, jd.symbol, jd.timeframe
LIMIT 50;

-- 9. Backfill progress for tracked symbols: one row per symbol, whoever tracks it and from where.
-- Was wrong: joined bars x runs per row (correct only thanks to COUNT DISTINCT, and very slow at
-- scale) and repeated each symbol once per source; bars and runs are now aggregated apart.
SELECT
  tr.sources                          AS source,
  s.ticker,
  tr.priority,
  tr.tracking_entries,
  coalesce(b.m15_bars, 0)             AS m15_bars,
  coalesce(b.h1_bars, 0)              AS h1_bars,
  coalesce(b.h4_bars, 0)              AS h4_bars,
  coalesce(b.d1_bars, 0)              AS d1_bars,
  coalesce(b.w1_bars, 0)              AS w1_bars,
  coalesce(r.queued_jobs, 0)          AS queued_jobs,
  coalesce(r.running_jobs, 0)         AS running_jobs,
  coalesce(r.completed_jobs, 0)       AS completed_jobs,
  r.last_job_finish
FROM (
  SELECT
    u.symbol_id,
    string_agg(DISTINCT u.source, ', ') AS sources,
    max(u.priority)                     AS priority,
    count(*)                            AS tracking_entries
  FROM public.user_symbol_tracking AS u
  GROUP BY u.symbol_id
) AS tr
JOIN public.symbols AS s ON s.id = tr.symbol_id
LEFT JOIN (
  SELECT
    d.symbol_id,
    count(*) FILTER (WHERE d.timeframe = 'm15') AS m15_bars,
    count(*) FILTER (WHERE d.timeframe = 'h1')  AS h1_bars,
    count(*) FILTER (WHERE d.timeframe = 'h4')  AS h4_bars,
    count(*) FILTER (WHERE d.timeframe = 'd1')  AS d1_bars,
    count(*) FILTER (WHERE d.timeframe = 'w1')  AS w1_bars
  FROM (
    SELECT DISTINCT o.symbol_id, o.timeframe, o.ts
    FROM public.ohlc_bars_v2 AS o
    WHERE NOT o.is_forecast
      AND o.symbol_id IN (SELECT ut.symbol_id FROM public.user_symbol_tracking AS ut)
  ) AS d
  GROUP BY d.symbol_id
) AS b ON b.symbol_id = tr.symbol_id
LEFT JOIN (
  SELECT
    jd.symbol_id,
    count(*) FILTER (WHERE jr.status = 'queued')  AS queued_jobs,
    count(*) FILTER (WHERE jr.status = 'running') AS running_jobs,
    count(*) FILTER (WHERE jr.status = 'success') AS completed_jobs,
    max(jr.finished_at) FILTER (WHERE jr.status = 'success') AS last_job_finish
  FROM public.job_definitions AS jd
  JOIN public.job_runs AS jr ON jr.job_def_id = jd.id
  GROUP BY jd.symbol_id
) AS r ON r.symbol_id = tr.symbol_id
ORDER BY tr.priority DESC, s.ticker;

-- 10. Health per timeframe over the last hour.
-- Was wrong: health_status referred to the alias success_rate_pct in the same SELECT, so it failed;
-- the rate is now computed in a subquery. Thresholds unchanged (Healthy: >10 successes and >90 %,
-- Degraded: >5 and >75 %, else Unhealthy); a timeframe with nothing queued, running or finished in
-- the hour is Idle instead of Unhealthy.
SELECT
  h.timeframe,
  h.success_count,
  h.failed_count,
  h.running_count,
  h.queued_count,
  h.success_rate_pct,
  CASE
    WHEN h.success_count + h.failed_count + h.running_count + h.queued_count = 0 THEN 'Idle'
    WHEN h.success_count > 10 AND h.success_rate_pct > 90 THEN 'Healthy'
    WHEN h.success_count > 5  AND h.success_rate_pct > 75 THEN 'Degraded'
    ELSE 'Unhealthy'
  END AS health_status
FROM (
  SELECT
    c.timeframe,
    c.sort_order,
    c.success_count,
    c.failed_count,
    c.running_count,
    c.queued_count,
    round(100.0 * c.success_count / nullif(c.success_count + c.failed_count, 0), 1) AS success_rate_pct
  FROM (
    SELECT
      t.timeframe,
      t.sort_order,
      count(jr.id) FILTER (WHERE jr.status = 'success' AND jr.updated_at >= now() - interval '1 hour') AS success_count,
      count(jr.id) FILTER (WHERE jr.status = 'failed'  AND jr.updated_at >= now() - interval '1 hour') AS failed_count,
      count(jr.id) FILTER (WHERE jr.status = 'running') AS running_count,
      count(jr.id) FILTER (WHERE jr.status = 'queued')  AS queued_count
    FROM public.timeframe_settings AS t
    LEFT JOIN public.job_runs AS jr
      ON jr.timeframe = t.timeframe
     AND (jr.status IN ('queued', 'running') OR jr.updated_at >= now() - interval '1 hour')
    GROUP BY t.timeframe, t.sort_order
  ) AS c
) AS h
ORDER BY h.sort_order;

-- 11. Completeness per timeframe (new): what the completeness checker last found for the enabled
-- definitions. "Fetched" is not "complete": a fetched session whose bars were deleted, or that the
-- provider answered without, is a hole. Holes by state: open (found), repairing (a repair run is
-- queued or ran), given_up (repairs brought nothing; `backfill verify --repair` tries again).
SELECT
  t.timeframe,
  coalesce(c.definitions_checked, 0) AS definitions_checked,
  coalesce(c.sessions_expected, 0) AS sessions_expected,
  coalesce(c.sessions_fetched, 0) AS sessions_fetched,
  coalesce(c.sessions_complete, 0) AS sessions_complete,
  round(100.0 * c.sessions_complete / nullif(c.sessions_expected, 0), 2) AS complete_pct,
  coalesce(h.open, 0) AS holes_open,
  coalesce(h.repairing, 0) AS holes_repairing,
  coalesce(h.given_up, 0) AS holes_given_up,
  c.oldest_check
FROM public.timeframe_settings AS t
LEFT JOIN (
  SELECT cc.timeframe, count(*) AS definitions_checked, sum(cc.sessions_expected) AS sessions_expected,
         sum(cc.sessions_fetched) AS sessions_fetched, sum(cc.sessions_complete) AS sessions_complete,
         min(cc.checked_at) AS oldest_check
  FROM public.coverage_completeness AS cc
  JOIN public.job_definitions AS d ON d.id = cc.job_def_id AND d.enabled
  GROUP BY cc.timeframe
) AS c ON c.timeframe = t.timeframe
LEFT JOIN (
  SELECT ch.timeframe,
         count(*) FILTER (WHERE ch.state = 'open') AS open,
         count(*) FILTER (WHERE ch.state = 'repairing') AS repairing,
         count(*) FILTER (WHERE ch.state = 'given_up') AS given_up
  FROM public.coverage_holes AS ch
  JOIN public.job_definitions AS d ON d.id = ch.job_def_id AND d.enabled
  GROUP BY ch.timeframe
) AS h ON h.timeframe = t.timeframe
ORDER BY t.sort_order;
