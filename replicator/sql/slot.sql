-- The replication slot $1, if it exists, and the database we are connected to. wal_status
-- 'lost' means the slot was invalidated (max_slot_wal_keep_size): it can no longer stream.
SELECT s.database, s.plugin, s.slot_type, s.active_pid, s.wal_status,
       s.confirmed_flush_lsn::text, current_database()
FROM pg_catalog.pg_replication_slots AS s
WHERE s.slot_name = $1::text;
