-- The run the next batch claim starts from, without locking it, at clock $1 (NULL: the
-- database's now()): its timeframe, symbol, the start of what it fetches (window_from; for a
-- refresh the previous fetch is a better guess of where it starts), its slice's end and whether
-- it is a refresh; and the slice, whose advisory lock the batch claim takes. The caller sizes the batch from it: a backfill of many bars a symbol takes
-- fewer batch-mates than a refresh of one bar each. No row: nothing is due.
SELECT r.timeframe, r.symbol, coalesce(r.window_from, r.slice_from), r.slice_from, r.slice_to,
       r.triggered_by = 'refresh', r.last_fetched_at
FROM public.job_runs r
WHERE r.status = 'queued' AND r.claim_priority IS NOT NULL
  AND r.next_attempt_at <= coalesce($1::timestamptz, now())
ORDER BY (r.triggered_by = 'refresh'), r.claim_priority DESC, r.last_fetched_at ASC NULLS FIRST, r.slice_to DESC, r.id
LIMIT 1
