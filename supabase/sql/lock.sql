-- Session-level: held across the per-migration transactions, released by unlock.sql or when the
-- connection ends. The key is arbitrary but fixed for this service.
SELECT pg_advisory_lock(7301920185516311552);
