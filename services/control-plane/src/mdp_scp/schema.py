"""The SCP's relational schema: one SQLAlchemy table per domain noun, portable to SQLite.

The tables are the single description of the store; Alembic migrations (``migrations/``)
create and evolve them, and a test checks that the migrated database matches this metadata.
Times are Unix seconds (floats) from the injected clock, so tests control them and SQLite and
PostgreSQL store them alike. Secrets are never stored in clear: sessions and API tokens are
kept as SHA-256 digests of the random value the client holds.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

__all__ = [
    "api_tokens",
    "audit_log",
    "layouts",
    "login_failures",
    "metadata",
    "sessions",
    "users",
    "watchlists",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    # Empty for accounts that only log in via OIDC (or service accounts, which use tokens).
    Column("password_hash", String(255), nullable=False, default=""),
    Column("oidc_subject", String(255), nullable=True, unique=True),
    Column("kind", String(16), nullable=False, default="person"),  # person | service
    Column("disabled", Boolean, nullable=False, default=False),
    # Who manages the account: "store" (management API) or "settings" (env/users file).
    Column("source", String(16), nullable=False, default="store"),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    # Public id: names the session in the audit log, the admin API and the WDS token ("sid").
    Column("id", String(64), primary_key=True),
    # SHA-256 of the cookie's secret: a copy of the table does not give working cookies.
    Column("secret_digest", String(64), nullable=False, unique=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("role", String(16), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("address", String(64), nullable=False, default=""),
    Column("via", String(16), nullable=False, default="password"),
    Index("ix_sessions_user_id", "user_id"),
    Index("ix_sessions_expires_at", "expires_at"),
)

login_failures = Table(
    "login_failures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(300), nullable=False),
    Column("at", Float, nullable=False),
    Index("ix_login_failures_key", "key", "at"),
    Index("ix_login_failures_at", "at"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(300), nullable=False, default=""),
    Column("result", String(32), nullable=False),
    Column("address", String(64), nullable=False, default=""),
    Column("detail", JSON, nullable=True),
    Index("ix_audit_log_at", "at"),
    Index("ix_audit_log_actor", "actor", "at"),
    Index("ix_audit_log_action", "action", "at"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("digest", String(64), nullable=False, unique=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    # The token's own role: at most the owner's (checked again at every use).
    Column("role", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
    Column("last_used_at", Float, nullable=True),
    Index("ix_api_tokens_user_id", "user_id"),
)

watchlists = Table(
    "watchlists",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(60), nullable=False),
    Column("symbols", JSON, nullable=False),
    Column("position", Integer, nullable=False, default=0),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("user_id", "name", name="uq_watchlists_user_id_name"),
)

layouts = Table(
    "layouts",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("layout", JSON, nullable=False),
    Column("updated_at", Float, nullable=False),
)
