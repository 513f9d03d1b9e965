-- The end LSN of the last upstream transaction whose effects are committed, for slot $1, and
-- whether it lies beyond the server's WAL: then it belongs to another server's history (a
-- restored or replaced cluster) and must not be trusted for skipping.
SELECT applied_lsn::text, applied_lsn > pg_catalog.pg_current_wal_lsn()
FROM public.replication_progress
WHERE slot_name = $1::text;
