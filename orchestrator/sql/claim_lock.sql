-- Serialize batch claims of one timeframe and slice ($1, e.g. 'm15 2026-11-26T00:00:00Z') until
-- the end of the caller's transaction. Without it, two processes claiming the same slice at the
-- same moment each skip the runs the other has just locked, and one bar close's refreshes go out
-- as three or four requests instead of one. The key is a hash of the text in a namespace of its
-- own, so it cannot meet another application's advisory locks by accident (a collision would
-- only make a claim wait).
SELECT pg_advisory_xact_lock(hashtextextended('backfill.claim_batch ' || $1::text, 0))
