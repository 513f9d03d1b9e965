-- Figures of one step of `backfill bench cdc`: the rows written (symbols whose ticker starts with
-- $1), how many still lack one of their three job definitions (m15, h1, h4 fetch_intraday), and,
-- over the rows that have all three, percentiles (p50, p90, p99, max) in milliseconds of:
--
--   * start: job_definitions.created_at - user_symbol_tracking.created_at, that is from the start
--     of the user's transaction to the start of the transaction that created the definitions
--     (now() in both, one database clock);
--   * commit: the commit timestamp of the definitions' transaction - the commit timestamp of the
--     user's transaction (pg_xact_commit_timestamp of each row's xmin): commit to commit, what
--     the issue asks for. NULL unless track_commit_timestamp is on (the function errors when it
--     is off, hence the CASE), and for rows written before it was switched on.
--
-- xmin still names the creating transaction because the benchmark never updates these rows.
--
-- $1 text  ticker prefix of the step
WITH tracked AS (
  SELECT u.created_at AS tracked_at,
         CASE WHEN pg_catalog.current_setting('track_commit_timestamp')::boolean
              THEN pg_catalog.pg_xact_commit_timestamp(u.xmin) END AS tracked_commit,
         d.defs, d.defined_at, d.defined_commit
  FROM public.symbols AS s
  JOIN public.user_symbol_tracking AS u ON u.symbol_id = s.id
  CROSS JOIN LATERAL (
    SELECT count(*) AS defs,
           max(jd.created_at) AS defined_at,
           max(CASE WHEN pg_catalog.current_setting('track_commit_timestamp')::boolean
                    THEN pg_catalog.pg_xact_commit_timestamp(jd.xmin) END) AS defined_commit
    FROM public.job_definitions AS jd
    WHERE jd.symbol_id = s.id
      AND jd.job_type = 'fetch_intraday'
      AND jd.timeframe IN ('m15', 'h1', 'h4')
  ) AS d
  WHERE starts_with(s.ticker, $1::text)
)
SELECT count(*) AS rows,
       count(*) FILTER (WHERE defs < 3) AS missing,
       percentile_disc(ARRAY[0.5, 0.9, 0.99, 1]) WITHIN GROUP (
         ORDER BY (extract(epoch FROM defined_at - tracked_at) * 1000)::float8)
         FILTER (WHERE defs = 3) AS start_ms,
       percentile_disc(ARRAY[0.5, 0.9, 0.99, 1]) WITHIN GROUP (
         ORDER BY (extract(epoch FROM defined_commit - tracked_commit) * 1000)::float8)
         FILTER (WHERE defs = 3 AND defined_commit IS NOT NULL AND tracked_commit IS NOT NULL) AS commit_ms
FROM tracked;
