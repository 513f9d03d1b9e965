-- Create a scratch database of `backfill bench cdc` as a copy of another. CREATE DATABASE takes
-- no parameters: %[1]s (the new database) and %[2]s (the template) are identifiers quoted with
-- pgx.Identifier.Sanitize before they are put in.
CREATE DATABASE %[1]s TEMPLATE %[2]s
