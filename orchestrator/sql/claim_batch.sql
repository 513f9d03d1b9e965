-- Lease a batch to owner $2 for $3 seconds at clock $4 (NULL: the database's now()): the first
-- due run in the claim order (as sql/claim.sql) and up to $1 − 1 due runs that one
-- multi-symbol request can serve with it: the same timeframe and slice, and the same kind of
-- work (a refresh rides only with refreshes, a backfill with backfills). Batch-mates come in
-- the claim order too, the head first (among runs of one slice it is the first in that order).
-- Both scans read an index in order (job_runs_claim_idx, job_runs_batch_idx) and sort nothing.
-- The caller holds the slice's advisory lock (sql/claim_lock.sql), so that two processes
-- claiming the same slice at once do not split it between them.
-- Columns returned as sql/claim.sql.
WITH head AS (
  SELECT r.id, r.timeframe, r.slice_from, r.slice_to, (r.triggered_by = 'refresh') AS refresh
  FROM public.job_runs r
  WHERE r.status = 'queued' AND r.claim_priority IS NOT NULL
    AND r.next_attempt_at <= coalesce($4::timestamptz, now())
  ORDER BY (r.triggered_by = 'refresh'), r.claim_priority DESC, r.last_fetched_at ASC NULLS FIRST, r.slice_to DESC, r.id
  LIMIT 1
  FOR UPDATE OF r SKIP LOCKED
),
picked AS (
  SELECT r.id
  FROM public.job_runs r, head h
  WHERE r.status = 'queued' AND r.claim_priority IS NOT NULL
    AND r.next_attempt_at <= coalesce($4::timestamptz, now())
    AND r.timeframe = h.timeframe AND r.slice_from = h.slice_from AND r.slice_to = h.slice_to
    AND (r.triggered_by = 'refresh') = h.refresh
  ORDER BY r.timeframe, r.slice_from, r.slice_to, (r.triggered_by = 'refresh'), r.claim_priority DESC,
           r.last_fetched_at ASC NULLS FIRST, r.id
  LIMIT greatest($1, 1)
  FOR UPDATE OF r SKIP LOCKED
)
UPDATE public.job_runs r
SET status = 'running',
    attempt = r.attempt + 1,
    lease_owner = $2,
    lease_expires_at = coalesce($4::timestamptz, now()) + make_interval(secs => $3::float8),
    heartbeat_at = coalesce($4::timestamptz, now()),
    started_at = coalesce($4::timestamptz, now()),
    finished_at = NULL,
    progress_percent = 0
FROM picked p, public.job_definitions d
WHERE r.id = p.id AND d.id = r.job_def_id
RETURNING r.id::text, r.job_def_id::text, r.symbol, d.symbol_id::text, r.timeframe, r.job_type,
          r.slice_from, r.slice_to, r.claim_priority, r.attempt, r.lease_owner,
          coalesce(r.window_from, r.slice_from) AS window_from,
          greatest(extract(epoch FROM r.started_at - r.next_attempt_at), 0)::float8 AS waited,
          r.started_at,
          (SELECT upper(x)
           FROM public.coverage_status c, unnest(c.covered) AS x
           WHERE c.symbol = r.symbol AND c.timeframe = r.timeframe
             AND x @> coalesce(r.window_from, r.slice_from)) AS covered_until,
          r.triggered_by, r.last_fetched_at
