-- A cheap fingerprint of job_definitions for the dispatcher's fallback poll: it changes when a
-- definition is added, removed, or its configuration changes (updated_at follows the
-- configuration columns), so a change whose notification was lost is still planned.
SELECT count(*)::bigint, coalesce(max(updated_at), '-infinity'::timestamptz)
FROM public.job_definitions
