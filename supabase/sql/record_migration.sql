INSERT INTO supabase_migrations.schema_migrations (version, name, statements)
VALUES ($1, $2, $3);
