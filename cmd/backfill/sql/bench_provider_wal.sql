-- `backfill bench provider`: the WAL position now, and the bytes written since $1 (a position
-- this query returned before; NULL: none, 0).
SELECT pg_current_wal_lsn()::text,
       coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn), 0)::float8
