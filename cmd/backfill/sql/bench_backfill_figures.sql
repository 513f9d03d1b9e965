-- The figures of one `backfill bench backfill` measurement, read from its own database once
-- every window is covered. Times are commit timestamps (track_commit_timestamp is on in the
-- throw-away cluster) or transaction times (now()), all from the one database clock:
--
--   defined_at  with tracking rows (the default way): the commit of the tracking transaction
--               (nothing updates those rows, so their xmin still names it); the replicator's
--               share is inside every figure. Without (--via definitions): the definitions'
--               transaction's start (requested_at, now() of that transaction; its xmin no
--               longer names it once the orchestrator records backfill milestones), a
--               millisecond or so before its commit, so the figures err on the long side
--   makespan    commit of the last successful run's write - defined_at
--   runs, failed, bars (sum of rows_written) and stored (rows in ohlc_bars_v2: equal if nothing
--               was written twice)
--   write_s     how long at least one write was in progress: the length of the union of the
--               successful runs' write statements, [finished_at (now() of the statement's
--               transaction, i.e. its start), commit]. Concurrent writes count once, so
--               bars / write_s is the database's write rate while it was writing.
--   first_ms    defined_at -> the first claim (started_at is now() of the claim)
--   busy_ms     defined_at -> the $1-th claim: all $1 workers busy (or the last run's claim)
--   def_ms      per definition, defined_at -> its first claim: p50, p99
--   run_ms      per run the first planning pass created, created_at -> started_at: p50, p99
--   orig_slices the original's 2 h intraday slices of these windows: window_days * 12 each
--
-- xmin of a run still names its write transaction: nothing updates a run after its success
-- while the benchmark looks.
--
-- $1 integer  concurrency
WITH d AS (
  SELECT coalesce((SELECT min(pg_catalog.pg_xact_commit_timestamp(t.xmin)) FROM public.user_symbol_tracking AS t),
                  min(requested_at)) AS defined_at,
         count(*) AS defs,
         sum(window_days * 12) AS orig_slices
  FROM public.job_definitions
),
r AS (
  SELECT jr.*, pg_catalog.pg_xact_commit_timestamp(jr.xmin) AS committed_at
  FROM public.job_runs AS jr
),
first_plan AS (
  SELECT min(created_at) AS planned_at FROM r
),
per_def AS (
  SELECT min(r.started_at) AS first_claim FROM r GROUP BY r.job_def_id
)
SELECT d.defs,
       d.orig_slices,
       (SELECT count(*) FROM r) AS runs,
       (SELECT count(*) FROM r WHERE status = 'failed') AS failed,
       (SELECT extract(epoch FROM max(committed_at) FILTER (WHERE status = 'success') - d.defined_at)::float8 FROM r) AS makespan_s,
       (SELECT coalesce(sum(rows_written), 0) FROM r) AS bars,
       (SELECT count(*) FROM public.ohlc_bars_v2) AS stored,
       (SELECT coalesce(extract(epoch FROM sum(upper(w) - lower(w))), 0)::float8
        FROM unnest((SELECT range_agg(tstzrange(finished_at, committed_at)) FROM r WHERE status = 'success')) AS w) AS write_s,
       (SELECT (extract(epoch FROM min(started_at) - d.defined_at) * 1000)::float8 FROM r) AS first_ms,
       (SELECT (extract(epoch FROM (array_agg(started_at ORDER BY started_at))[least($1::integer, count(*))] - d.defined_at) * 1000)::float8
        FROM r WHERE started_at IS NOT NULL) AS busy_ms,
       (SELECT percentile_disc(ARRAY[0.5, 0.99]) WITHIN GROUP (
                 ORDER BY (extract(epoch FROM first_claim - d.defined_at) * 1000)::float8)
        FROM per_def) AS def_ms,
       (SELECT percentile_disc(ARRAY[0.5, 0.99]) WITHIN GROUP (
                 ORDER BY (extract(epoch FROM r.started_at - r.created_at) * 1000)::float8)
        FROM r, first_plan AS f WHERE r.created_at = f.planned_at AND r.started_at IS NOT NULL) AS run_ms
FROM d;
