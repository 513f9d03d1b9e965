-- Lease up to $1 due queued runs to owner $2 for $3 seconds, at clock $4 (NULL: the database's
-- now()); started_at is the claim's instant on that clock, returned so that the worker asks the
-- provider for nothing after it.
-- Order: the definition's priority as it is now (a watchlist add raises queued work at once),
-- then the newest slice. FOR UPDATE OF r SKIP LOCKED lets concurrent claimers pass each other;
-- a run another claimer committed meanwhile fails the status recheck and is left out.
-- waited is how long the run had been due (queued, or its retry delay over) when claimed: the
-- pickup latency, queueing behind busy workers included.
-- window_from is where the part of the slice to fetch starts (slice_from for runs made by
-- hand); covered_until is where the covered stretch that holds window_from ends (NULL when it
-- is not covered): the worker fetches only from there on, so refreshing an open slice costs
-- the new bars, not the whole slice.
WITH picked AS (
  SELECT r.id, d.symbol_id, d.priority
  FROM public.job_runs r
  JOIN public.job_definitions d ON d.id = r.job_def_id
  WHERE r.status = 'queued'
    AND r.next_attempt_at <= coalesce($4::timestamptz, now())
    AND d.enabled
  ORDER BY d.priority DESC, r.slice_to DESC, r.id
  LIMIT $1
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
FROM picked p
WHERE r.id = p.id
RETURNING r.id::text, r.job_def_id::text, r.symbol, p.symbol_id::text, r.timeframe, r.job_type,
          r.slice_from, r.slice_to, p.priority, r.attempt, r.lease_owner,
          coalesce(r.window_from, r.slice_from) AS window_from,
          greatest(extract(epoch FROM r.started_at - r.next_attempt_at), 0)::float8 AS waited,
          r.started_at,
          (SELECT upper(x)
           FROM public.coverage_status c, unnest(c.covered) AS x
           WHERE c.symbol = r.symbol AND c.timeframe = r.timeframe
             AND x @> coalesce(r.window_from, r.slice_from)) AS covered_until
