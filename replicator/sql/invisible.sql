-- How many of the upstream transactions $1 (the 32-bit xids of pgoutput Begin messages) this
-- statement's snapshot does not see yet. A committing backend writes and flushes its commit
-- record (which the walsender may decode and send at once) a moment before it leaves the proc
-- array; an apply whose snapshot fell in that moment would re-derive from the old rows. The
-- caller repeats this until it answers 0; in READ COMMITTED every statement takes a new
-- snapshot, so the apply that follows sees them too.
--
-- A 32-bit xid is widened to xid8 with the epoch of the snapshot's xmax: the nearest value
-- (within 2^31) to xmax with the same low 32 bits.
WITH snap AS (
  SELECT pg_current_snapshot() AS s,
         pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xmax
),
full_xid AS (
  SELECT snap.s,
         snap.xmax + CASE WHEN d.d >= 2147483648 THEN d.d - 4294967296 ELSE d.d END AS xid
  FROM snap
  CROSS JOIN unnest($1::bigint[]) AS x (xid)
  CROSS JOIN LATERAL (SELECT (x.xid - snap.xmax) & 4294967295 AS d) AS d
)
SELECT count(*)
FROM full_xid AS f
WHERE f.xid >= 3 -- 0-2 are special (invalid, bootstrap, frozen) and always visible
  AND NOT pg_visible_in_snapshot(f.xid::text::xid8, f.s);
