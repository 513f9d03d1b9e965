-- What Start checks before it runs: wal_level, the REPLICATION attribute (to explain a refused
-- replication connection), the publication $1 carrying public.user_symbol_tracking, and the
-- migrated bookkeeping table.
SELECT current_setting('wal_level'),
       coalesce((SELECT r.rolreplication OR r.rolsuper FROM pg_catalog.pg_roles AS r
                 WHERE r.rolname = current_user), false),
       EXISTS (SELECT 1 FROM pg_catalog.pg_publication AS p WHERE p.pubname = $1::text),
       EXISTS (SELECT 1 FROM pg_catalog.pg_publication_tables AS t
               WHERE t.pubname = $1::text AND t.schemaname = 'public' AND t.tablename = 'user_symbol_tracking'),
       to_regclass('public.replication_progress') IS NOT NULL;
