-- Drop an invalidated slot so it can be created afresh. Fails with 55006 when a walsender holds
-- it, 42704 when it is gone already.
SELECT pg_catalog.pg_drop_replication_slot($1::text)::text;
