-- Record the backfill milestones of definitions $1 after runs of theirs succeeded with $2 bars
-- changed (parallel arrays, one element per definition, distinct): their first bars, and their
-- whole requested window done (no run of theirs queued or running, none failed since the
-- request: at or after the definition's requested_revision). Each milestone is set once per
-- request, at clock $3 (NULL: the database's now()); the statement writes only the
-- definitions that reach one. Returns, per definition that reached a milestone now, its id
-- and the seconds from the request to each milestone reached (NULL otherwise).
--
-- Run after the runs' own commit: of two runs finishing together, the later commit sees the
-- other's success, so the window's completion is never missed.
WITH input AS (
  SELECT * FROM unnest($1::uuid[], $2::bigint[]) AS i (id, written)
),
open AS (
  SELECT i.id, i.written, d.first_bars_at, d.covered_at,
         d.covered_at IS NULL AND NOT EXISTS (
           SELECT 1 FROM public.job_runs AS r
           WHERE r.job_def_id = i.id
             AND (r.status IN ('queued', 'running') OR (r.status = 'failed' AND r.failed_revision >= d.requested_revision))
         ) AS covered
  FROM input i JOIN public.job_definitions d ON d.id = i.id
  WHERE (d.first_bars_at IS NULL AND i.written > 0) OR d.covered_at IS NULL
),
upd AS (
  UPDATE public.job_definitions AS jd
  SET first_bars_at = CASE WHEN jd.first_bars_at IS NULL AND o.written > 0
                           THEN coalesce($3::timestamptz, now()) ELSE jd.first_bars_at END,
      covered_at = CASE WHEN jd.covered_at IS NULL AND o.covered
                        THEN coalesce($3::timestamptz, now()) ELSE jd.covered_at END
  FROM open o
  WHERE jd.id = o.id
    AND ((jd.first_bars_at IS NULL AND o.written > 0) OR (jd.covered_at IS NULL AND o.covered))
  RETURNING jd.id, jd.first_bars_at, jd.covered_at, jd.requested_at
)
SELECT upd.id::text,
       CASE WHEN o.first_bars_at IS NULL AND upd.first_bars_at IS NOT NULL
            THEN extract(epoch FROM upd.first_bars_at - upd.requested_at)::float8 END,
       CASE WHEN o.covered_at IS NULL AND upd.covered_at IS NOT NULL
            THEN extract(epoch FROM upd.covered_at - upd.requested_at)::float8 END
FROM upd JOIN open o ON o.id = upd.id
