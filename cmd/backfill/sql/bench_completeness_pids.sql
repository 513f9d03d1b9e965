-- `backfill bench completeness`: the server processes serving clients, whose CPU the figures
-- count.
SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend'
