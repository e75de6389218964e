"""Alembic migrations of the SCP database (run by ``mdp-scp migrate`` or at start-up)."""
