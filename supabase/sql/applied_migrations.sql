SELECT version, coalesce(name, ''), coalesce(statements, '{}'::text[])
FROM supabase_migrations.schema_migrations
ORDER BY version;
