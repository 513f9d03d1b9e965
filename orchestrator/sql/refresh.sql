-- Queue again the successful runs of slices fetched while open, once a bar may have closed
-- since (package doc, "Refresh"): $1 text[] timeframes, $2 timestamptz[] and $3 timestamptz[]
-- (same order) the instants after which a stock (NYSE calendar) and a crypto pair (24/7) last
-- had a bar close, settle delay included (NULL: the clock); $4 the clock (NULL: the
-- database's now()). A run of
-- an open slice is queued when its fetch started before that instant (it may lack the bar);
-- a run of a slice that has ended since its fetch started is queued once (its tail, possibly
-- only closed-market time, which the worker then records without asking the provider).
-- Nights, weekends and holidays close no bar, so nothing is queued then. Runs are found
-- through job_runs_refresh_idx by timeframe and start. triggered_by 'refresh' ranks them
-- after every backfill in the claim order; last_fetched_at (the trigger) takes the previous
-- fetch, so the least recently fetched go first. Returns the number queued per timeframe.
WITH clock AS (
  SELECT coalesce($4::timestamptz, now()) AS now
),
t AS MATERIALIZED (
  SELECT a.timeframe, coalesce(a.stock, clock.now) AS stock, coalesce(a.crypto, clock.now) AS crypto
  FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) AS a (timeframe, stock, crypto), clock
),
due AS (
  SELECT r.id
  FROM public.job_runs r JOIN t ON r.timeframe = t.timeframe
  WHERE r.status = 'success' AND r.started_at < r.slice_to
    AND r.started_at < greatest(t.stock, t.crypto)
    AND r.started_at < CASE WHEN strpos(r.symbol, '/') > 0 THEN t.crypto ELSE t.stock END
  UNION
  SELECT r.id
  FROM public.job_runs r, clock
  WHERE r.status = 'success' AND r.started_at < r.slice_to AND r.slice_to <= clock.now
),
requeued AS (
  UPDATE public.job_runs AS r
  SET status = 'queued', attempt = 0, next_attempt_at = clock.now, error_code = NULL,
      error_message = NULL, started_at = NULL, finished_at = NULL, progress_percent = 0,
      lease_owner = NULL, lease_expires_at = NULL, heartbeat_at = NULL, triggered_by = 'refresh'
  FROM due, clock, public.job_definitions d
  WHERE r.id = due.id AND d.id = r.job_def_id AND d.enabled
    AND r.status = 'success' AND r.started_at < r.slice_to
  RETURNING r.timeframe
)
SELECT timeframe, count(*)::int FROM requeued GROUP BY timeframe
