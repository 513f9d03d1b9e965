-- Slot $1, the walsender holding it and the replicator's progress; one row even when neither
-- the slot nor any progress exists. lag: how far the replicator is behind (current position
-- minus confirmed_flush_lsn, as the replicator's slot_lag_bytes metric); retained: WAL the slot
-- keeps on disk (current position minus restart_lsn). The client address of pg_stat_replication needs pg_read_all_stats (or the
-- same role); without it, it is NULL.
SELECT s.slot_name IS NOT NULL,
       coalesce(s.active, false),
       coalesce(s.active_pid, 0),
       CASE WHEN sr.client_addr IS NULL THEN ''
            WHEN pg_catalog.family(sr.client_addr) = 6 THEN '[' || pg_catalog.host(sr.client_addr) || ']:' || sr.client_port
            ELSE pg_catalog.host(sr.client_addr) || ':' || sr.client_port END,
       coalesce(s.confirmed_flush_lsn::text, ''),
       pg_catalog.pg_current_wal_lsn()::text,
       coalesce(pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), s.confirmed_flush_lsn)::bigint, 0),
       coalesce(p.applied_lsn::text, ''),
       p.applied_at,
       coalesce(s.wal_status, ''),
       coalesce(pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), s.restart_lsn)::bigint, 0)
FROM (VALUES ($1::text)) AS n (slot_name)
LEFT JOIN pg_catalog.pg_replication_slots AS s ON s.slot_name = n.slot_name
LEFT JOIN pg_catalog.pg_stat_replication AS sr ON sr.pid = s.active_pid
LEFT JOIN public.replication_progress AS p ON p.slot_name = n.slot_name
