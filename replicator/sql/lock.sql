-- Serialise applies across processes and slots for the rest of the transaction. The apply
-- statement that follows takes its snapshot after this returns, so it sees every apply that
-- committed before: a late apply (a replica that just lost its slot) cannot overwrite newer
-- results with an older reading of the tracking rows, and concurrent upserts cannot deadlock.
SELECT pg_advisory_xact_lock($1::bigint);
