-- A development user for `backfill token --role authenticated`: the server accepts a user token
-- only when its sub is in auth.users.
INSERT INTO auth.users (id, email) VALUES ($1::uuid, $2)
ON CONFLICT (id) DO NOTHING;
