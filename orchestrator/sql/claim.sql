-- Lease up to $1 due queued runs to owner $2 for $3 seconds, at clock $4 (NULL: the database's
-- now()), in the claim order (package doc, "Claim order"): backfill before refresh, then the
-- definition's priority as it is now (claim_priority, kept by a trigger; NULL while the
-- definition is disabled, so never claimed), then the least recently fetched, then the newest
-- slice. The ORDER BY is job_runs_claim_idx's, so the claim reads the index in order and sorts
-- nothing. FOR UPDATE OF r SKIP LOCKED lets concurrent claimers pass each other.
-- started_at is the claim's instant on that clock, returned so that the worker asks the
-- provider for nothing after it; waited is how long the run had been due (pickup latency);
-- covered_until is where the covered stretch that holds window_from ends (NULL when it is not
-- covered): the worker fetches only from there on.
WITH picked AS (
  SELECT r.id
  FROM public.job_runs r
  WHERE r.status = 'queued' AND r.claim_priority IS NOT NULL
    AND r.next_attempt_at <= coalesce($4::timestamptz, now())
  ORDER BY (r.triggered_by = 'refresh'), r.claim_priority DESC, r.last_fetched_at ASC NULLS FIRST, r.slice_to DESC, r.id
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
