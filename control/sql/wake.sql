-- Wake the planners and workers of every process: a notification on channel $1
-- (replicator.NotifyChannel) with payload $2, delivered when the transaction commits.
SELECT pg_catalog.pg_notify($1::text, $2::text)::text
