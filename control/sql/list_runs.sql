-- Job runs, newest first: by created_at, then slice_from, then id, all descending (keys that
-- never change, so paging is stable while runs change state). Filters: $1 symbol, $2 timeframe,
-- $4 job_def_id, each ignored when NULL; $3 statuses, ignored when empty. Keyset: only rows
-- before ($5 created_at, $6 slice_from, $7 id) when $5 is not NULL. At most $8 rows.
SELECT r.id::text, r.job_def_id::text, r.symbol, r.timeframe, r.slice_from, r.slice_to, r.status, r.attempt,
       r.rows_written, coalesce(r.provider, ''), coalesce(r.error_code, ''), coalesce(r.error_message, ''),
       coalesce(r.lease_owner, ''), r.next_attempt_at, r.started_at, r.finished_at, r.created_at, r.updated_at
FROM public.job_runs AS r
WHERE ($1::text IS NULL OR r.symbol = $1::text)
  AND ($2::text IS NULL OR r.timeframe = $2::text)
  AND (cardinality($3::text[]) = 0 OR r.status = ANY ($3::text[]))
  AND ($4::uuid IS NULL OR r.job_def_id = $4::uuid)
  AND ($5::timestamptz IS NULL
       OR (r.created_at, r.slice_from, r.id) < ($5::timestamptz, $6::timestamptz, $7::uuid))
ORDER BY r.created_at DESC, r.slice_from DESC, r.id DESC
LIMIT $8
