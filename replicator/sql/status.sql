-- Slot $1 and our progress on it; a row even when neither exists.
SELECT s.slot_name IS NOT NULL, s.active_pid, s.wal_status, s.confirmed_flush_lsn::text,
       pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), s.confirmed_flush_lsn)::bigint,
       p.applied_lsn::text, p.applied_at
FROM (VALUES ($1::text)) AS n (slot_name)
LEFT JOIN pg_catalog.pg_replication_slots AS s ON s.slot_name = n.slot_name
LEFT JOIN public.replication_progress AS p ON p.slot_name = n.slot_name;
