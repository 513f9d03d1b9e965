-- `backfill bench completeness`: the database's time so far, from pg_stat_statements: the
-- execution time of every statement (milliseconds), excluding the statistics' own queries; and
-- the CPU ticks (user + system, from /proc, read by the caller) need the backends' pids.
SELECT coalesce(sum(total_exec_time), 0)::float8
FROM pg_stat_statements
WHERE query NOT LIKE '%pg_stat_statements%'
