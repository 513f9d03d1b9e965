-- The rule: job definitions are a function of the tracking rows. For the symbols in $1 (NULL:
-- every symbol, the full reconcile), re-derive their job definitions from the current contents of
-- user_symbol_tracking, record the replication progress and notify, all in one statement.
--
--   * Every (symbol, timeframe) listed by at least one tracking row has a definition with the
--     timeframe's job_type (timeframe_settings). An origin 'tracking' definition is enabled and
--     has the highest priority among the rows listing the timeframe. A new one takes the
--     timeframe's default_window_days; window_days of an existing one is never changed.
--   * An enabled origin 'tracking' definition whose (symbol, timeframe) no row lists any more is
--     disabled with disabled_reason 'no longer tracked'. Its bars stay.
--   * Definitions with origin 'seed' or 'manual' are never written: they belong to whoever made
--     them. `UPDATE job_definitions SET origin = 'tracking'` hands one over to tracking.
--   * A tracking definition the orchestrator disabled because the provider refused it for good
--     (disabled_reason 'permanent provider error: …', e.g. an unknown symbol) stays disabled
--     while tracked, so a restart's reconcile does not send it back to a provider that will
--     refuse it again; its priority still follows the tracking rows. Clearing the reason
--     (`UPDATE job_definitions SET enabled = true, disabled_reason = NULL WHERE …`) retries it.
--     The same holds for one an operator disabled through the control plane (disabled_reason
--     'disabled by operator'): it stays disabled until the operator enables it.
--   * Rows already in the wanted state are not written at all (no new row version, no WAL).
--
-- The effect depends only on the tracking rows at the time of the statement, so applying it
-- twice, late, or for more symbols than changed is harmless: that is what makes at-least-once
-- delivery safe. The upsert and the disable touch disjoint rows (wanted vs not wanted).
--
-- $1 uuid[]   symbols whose tracking rows changed; NULL = every symbol
-- $2 text     slot name: the replication_progress row and the notification
-- $3 text     pg_lsn of the end of the last upstream transaction this apply completes;
--             NULL records no progress (a partial apply, a plain reconcile)
-- $4 boolean  true: store $3 as is (a new slot starts a new LSN history); false: never move
--             the recorded LSN backwards
-- $5 text     what kind of apply this is (stream, partial, reconcile), for the notification
WITH wanted AS (
  SELECT u.symbol_id, tf.timeframe, max(u.priority) AS priority
  FROM public.user_symbol_tracking AS u
  CROSS JOIN LATERAL unnest(u.timeframes) AS tf (timeframe)
  WHERE $1::uuid[] IS NULL OR u.symbol_id = ANY ($1::uuid[])
  GROUP BY u.symbol_id, tf.timeframe
),
target AS (
  SELECT s.ticker, w.symbol_id, w.timeframe, ts.job_type, ts.default_window_days, w.priority
  FROM wanted AS w
  JOIN public.symbols AS s ON s.id = w.symbol_id
  JOIN public.timeframe_settings AS ts ON ts.timeframe = w.timeframe
),
upserted AS (
  INSERT INTO public.job_definitions AS jd
    (job_type, symbol, symbol_id, timeframe, window_days, priority, enabled, origin, disabled_reason)
  SELECT t.job_type, t.ticker, t.symbol_id, t.timeframe, t.default_window_days, t.priority, true, 'tracking', NULL
  FROM target AS t
  LEFT JOIN public.job_definitions AS cur
    ON cur.symbol = t.ticker AND cur.timeframe = t.timeframe AND cur.job_type = t.job_type
  -- Only what is missing or differs: a no-op change locks and writes nothing.
  WHERE cur.id IS NULL
     OR (cur.origin = 'tracking'
         AND (cur.priority <> t.priority
              OR ((NOT cur.enabled OR cur.disabled_reason IS NOT NULL)
                  AND coalesce(cur.disabled_reason, '') !~ '^(permanent provider error:|disabled by operator)')))
  ORDER BY t.ticker, t.timeframe
  ON CONFLICT ON CONSTRAINT job_definitions_symbol_timeframe_job_type_key DO UPDATE
  SET priority = EXCLUDED.priority,
      enabled = CASE WHEN jd.disabled_reason ~ '^(permanent provider error:|disabled by operator)' THEN jd.enabled ELSE true END,
      disabled_reason = CASE WHEN jd.disabled_reason ~ '^(permanent provider error:|disabled by operator)' THEN jd.disabled_reason END,
      -- Re-enabled: a new request, whose backfill latency is measured from now.
      requested_at = CASE WHEN NOT jd.enabled AND coalesce(jd.disabled_reason, '') !~ '^(permanent provider error:|disabled by operator)'
                          THEN now() ELSE jd.requested_at END,
      first_bars_at = CASE WHEN NOT jd.enabled AND coalesce(jd.disabled_reason, '') !~ '^(permanent provider error:|disabled by operator)'
                           THEN NULL ELSE jd.first_bars_at END,
      covered_at = CASE WHEN NOT jd.enabled AND coalesce(jd.disabled_reason, '') !~ '^(permanent provider error:|disabled by operator)'
                        THEN NULL ELSE jd.covered_at END
  -- Checked again here: a definition made by someone else since the statement's snapshot stays theirs.
  WHERE jd.origin = 'tracking'
    AND (jd.priority <> EXCLUDED.priority
         OR ((NOT jd.enabled OR jd.disabled_reason IS NOT NULL)
             AND coalesce(jd.disabled_reason, '') !~ '^(permanent provider error:|disabled by operator)'))
  RETURNING (jd.xmax = 0) AS inserted
),
disabled AS (
  UPDATE public.job_definitions AS jd
  SET enabled = false,
      disabled_reason = 'no longer tracked'
  WHERE jd.origin = 'tracking'
    AND jd.enabled
    AND ($1::uuid[] IS NULL OR jd.symbol_id = ANY ($1::uuid[]))
    AND NOT EXISTS (
      SELECT 1 FROM target AS t
      WHERE t.symbol_id = jd.symbol_id AND t.timeframe = jd.timeframe AND t.job_type = jd.job_type)
  RETURNING 1
),
progress AS (
  INSERT INTO public.replication_progress AS p (slot_name, applied_lsn, applied_at)
  SELECT $2::text, $3::text::pg_lsn, now()
  WHERE $3::text IS NOT NULL
  ON CONFLICT (slot_name) DO UPDATE
  SET applied_lsn = CASE WHEN $4::boolean THEN EXCLUDED.applied_lsn
                         ELSE greatest(p.applied_lsn, EXCLUDED.applied_lsn) END,
      applied_at = EXCLUDED.applied_at
  RETURNING 1
),
counts AS (
  SELECT (SELECT count(*) FROM upserted WHERE inserted)     AS inserted,
         (SELECT count(*) FROM upserted WHERE NOT inserted) AS updated,
         (SELECT count(*) FROM disabled)                    AS disabled,
         (SELECT count(*) FROM progress)                    AS recorded
)
SELECT c.inserted, c.updated, c.disabled, c.recorded,
       -- Delivered when the transaction commits, with the effects. ::text because pg_notify
       -- returns void.
       pg_notify('backfill_job_definitions', json_build_object(
         'slot', $2::text, 'kind', $5::text, 'lsn', $3::text,
         'inserted', c.inserted, 'updated', c.updated, 'disabled', c.disabled)::text)::text
FROM counts AS c;
