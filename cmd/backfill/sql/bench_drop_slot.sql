-- Remove the benchmark's replication slot $1 and its progress row once its replicator has
-- stopped: a forgotten slot pins WAL forever. No row when the slot is gone already; fails with
-- 55006 while a walsender still holds it (the caller retries).
--
-- $1 text  slot name
WITH forgotten AS (
  DELETE FROM public.replication_progress WHERE slot_name = $1::text
)
SELECT pg_catalog.pg_drop_replication_slot(s.slot_name)::text
FROM pg_catalog.pg_replication_slots AS s
WHERE s.slot_name = $1::text;
