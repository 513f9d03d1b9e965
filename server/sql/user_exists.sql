-- Whether an access token's subject is (still) a user. $1 is the token's sub, already checked to
-- be a UUID. Reads auth.users only, so it runs unchanged on hosted Supabase and in the dev cluster.
SELECT EXISTS (SELECT 1 FROM auth.users WHERE id = $1::uuid);
