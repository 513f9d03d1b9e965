SELECT to_regclass('supabase_migrations.schema_migrations') IS NOT NULL;
