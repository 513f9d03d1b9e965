-- Drop a scratch database of `backfill bench cdc`, ending its sessions. %[1]s is the database,
-- quoted with pgx.Identifier.Sanitize (DROP DATABASE takes no parameters).
DROP DATABASE IF EXISTS %[1]s WITH (FORCE)
