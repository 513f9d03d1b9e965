-- The server settings that shape the figures of `backfill bench backfill`, for its header.
SELECT pg_catalog.current_setting('server_version'),
       pg_catalog.current_setting('fsync'),
       pg_catalog.current_setting('synchronous_commit'),
       pg_catalog.current_setting('shared_buffers'),
       pg_catalog.current_setting('max_connections'),
       pg_catalog.current_setting('track_commit_timestamp');
