"""Alembic environment: migrations always run on a connection the SCP hands over."""

from __future__ import annotations

from alembic import context

from mdp_scp.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    msg = "run the SCP's migrations with `mdp-scp migrate` (or at start-up), not bare alembic"
    raise RuntimeError(msg)
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,  # SQLite alters tables by copying them
)
with context.begin_transaction():
    context.run_migrations()
