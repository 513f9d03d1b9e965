-- Change definition $1: window_days $2, priority $3, enabled $4, each only when not NULL, and only
-- when it differs, so a request that changes nothing writes nothing (no new updated_at, which
-- would make the planner retry the definition's failed runs). Enabling clears disabled_reason
-- and, for a definition that was disabled, starts a new request: the latency milestones restart,
-- as when tracking re-enables one. Disabling sets disabled_reason 'disabled by operator', which
-- the replicator respects: a tracking change does not enable the definition again. A change notifies channel $5 (replicator.NotifyChannel) with payload $6, delivered
-- when the transaction commits, so the planners take it at once.
--
-- A new request is stamped requested_at = clock $7 (NULL: the database's now()).
--
-- One row: the definition after the change (or as it is, when nothing changed) and whether it
-- changed. No row: there is no definition $1.
WITH cur AS (
  SELECT d.* FROM public.job_definitions AS d WHERE d.id = $1::uuid FOR UPDATE
),
upd AS (
  UPDATE public.job_definitions AS d
  SET window_days     = coalesce($2::integer, d.window_days),
      priority        = coalesce($3::integer, d.priority),
      enabled         = coalesce($4::boolean, d.enabled),
      disabled_reason = CASE WHEN $4::boolean THEN NULL
                             WHEN NOT $4::boolean AND d.enabled THEN 'disabled by operator'
                             ELSE d.disabled_reason END,
      requested_at    = CASE WHEN $4::boolean AND NOT d.enabled THEN coalesce($7::timestamptz, now())
                             ELSE d.requested_at END,
      first_bars_at   = CASE WHEN $4::boolean AND NOT d.enabled THEN NULL ELSE d.first_bars_at END,
      covered_at      = CASE WHEN $4::boolean AND NOT d.enabled THEN NULL ELSE d.covered_at END
  FROM cur
  WHERE d.id = cur.id
    AND (d.window_days <> coalesce($2::integer, d.window_days)
         OR d.priority <> coalesce($3::integer, d.priority)
         OR d.enabled <> coalesce($4::boolean, d.enabled)
         OR ($4::boolean AND d.disabled_reason IS NOT NULL))
  RETURNING d.*
),
res AS (
  SELECT * FROM upd
  UNION ALL
  SELECT * FROM cur WHERE NOT EXISTS (SELECT 1 FROM upd)
)
SELECT r.id::text, r.symbol, r.timeframe, r.job_type, r.window_days, r.priority, r.enabled, r.origin,
       coalesce(r.disabled_reason, ''), r.requested_at, r.first_bars_at, r.covered_at, r.created_at,
       r.updated_at, EXISTS (SELECT 1 FROM upd) AS changed,
       -- ::text because pg_notify returns void.
       CASE WHEN EXISTS (SELECT 1 FROM upd) THEN pg_catalog.pg_notify($5::text, $6::text)::text END
FROM res AS r
