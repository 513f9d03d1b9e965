-- Bytes of WAL between the server's current position and slot $1's confirmed flush position.
SELECT pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), confirmed_flush_lsn)::bigint
FROM pg_catalog.pg_replication_slots
WHERE slot_name = $1::text;
