-- One pass at a time across processes: "complete" in ASCII. Session-level, released by unlock.sql.
SELECT pg_try_advisory_lock(7164793228880537701)
