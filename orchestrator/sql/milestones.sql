-- Record the backfill milestones of definition $1 after one of its runs succeeded with $2 bars
-- changed: its first bars, and its whole requested window done (no run of it queued or running,
-- none failed since the request: at or after the definition's requested_revision). Each
-- milestone is set once per request, at clock $3 (NULL: the database's now()); the statement
-- writes only when one is reached. Returns the seconds from the request to each milestone
-- reached now (NULL otherwise), or no row.
--
-- Run after the run's own commit: of two runs finishing together, the later commit sees the
-- other's success, so the window's completion is never missed.
WITH before AS (
  SELECT first_bars_at, covered_at FROM public.job_definitions WHERE id = $1::uuid
),
done AS (
  SELECT NOT EXISTS (
    SELECT 1 FROM public.job_runs AS r JOIN public.job_definitions AS d ON d.id = r.job_def_id
    WHERE r.job_def_id = $1::uuid
      AND (r.status IN ('queued', 'running') OR (r.status = 'failed' AND r.failed_revision >= d.requested_revision))
  ) AS covered
),
upd AS (
  UPDATE public.job_definitions AS jd
  SET first_bars_at = CASE WHEN jd.first_bars_at IS NULL AND $2::bigint > 0
                           THEN coalesce($3::timestamptz, now()) ELSE jd.first_bars_at END,
      covered_at = CASE WHEN jd.covered_at IS NULL AND done.covered
                        THEN coalesce($3::timestamptz, now()) ELSE jd.covered_at END
  FROM done
  WHERE jd.id = $1::uuid
    AND ((jd.first_bars_at IS NULL AND $2::bigint > 0) OR (jd.covered_at IS NULL AND done.covered))
  RETURNING jd.first_bars_at, jd.covered_at, jd.requested_at
)
SELECT
  CASE WHEN before.first_bars_at IS NULL AND upd.first_bars_at IS NOT NULL
       THEN extract(epoch FROM upd.first_bars_at - upd.requested_at)::float8 END,
  CASE WHEN before.covered_at IS NULL AND upd.covered_at IS NOT NULL
       THEN extract(epoch FROM upd.covered_at - upd.requested_at)::float8 END
FROM upd, before;
