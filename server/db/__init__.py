"""Database access: engine and sessions, typed models, embedded PostgreSQL, migrations."""
