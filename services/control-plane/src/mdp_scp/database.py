"""The SCP's relational store: engine, transactions, migrations, and "the database is down".

One URL chooses the backend: ``sqlite:///path`` (the embedded default: one file, no server)
or ``postgresql://...`` (deployments with several replicas). The async driver is picked here
(aiosqlite, asyncpg), so settings and docs use plain URLs. Every change runs in one
transaction (:meth:`Database.transaction`), so a failure leaves nothing half-written. Any
failure to reach the database surfaces as :class:`StoreUnavailable`, which the web layer turns
into ``503`` with ``Retry-After``: sessions fail closed, never open.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

__all__ = ["BadValue", "Database", "StoreUnavailable", "async_url"]

_DRIVERS: Final = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
# Two replicas starting at once must not both migrate: the first holds this lock.
_MIGRATION_LOCK: Final = 0x6D6470736370  # "mdpscp"
_CONNECT_TIMEOUT_SECONDS: Final = 5.0


class StoreUnavailable(Exception):
    """The database cannot be reached or failed; the request may be retried later."""


class BadValue(Exception):
    """The database refused a value of the request (SQLSTATE class 22, a data exception).

    PostgreSQL text cannot hold a NUL character, which SQLite and every check before the
    database let through: the request's fault (400), not the store's (500).
    """


def async_url(url: str) -> str:
    """``url`` with the async driver of its backend (``sqlite`` -> ``sqlite+aiosqlite``).

    Raises:
        ValueError: for a backend other than SQLite and PostgreSQL.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    driver = _DRIVERS.get(backend)
    if driver is None:
        msg = f"the SCP database must be sqlite:// or postgresql://; it was {backend!r}"
        raise ValueError(msg)
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def _is_memory(url: str) -> bool:
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")


def _enable_sqlite_foreign_keys(dbapi_connection: object, record: object) -> None:
    del record
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined] # DBAPI connection
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    """An async engine plus the SCP's migration and transaction helpers.

    Args:
        url: ``sqlite:///file``, ``sqlite:///:memory:`` (tests) or ``postgresql://...``.
    """

    def __init__(self, url: str) -> None:
        self.url = async_url(url)
        self.backend = make_url(self.url).get_backend_name()
        # An in-memory database lives in one connection, so its transactions take turns.
        self._turns: asyncio.Lock | None = None
        if _is_memory(self.url):
            # One shared connection, or every checkout would see its own empty database.
            self.engine: AsyncEngine = create_async_engine(
                self.url, poolclass=StaticPool, hide_parameters=True
            )
            self._turns = asyncio.Lock()
        elif self.backend == "sqlite":
            self.engine = create_async_engine(
                self.url, connect_args={"timeout": 15}, hide_parameters=True
            )
        else:
            self.engine = create_async_engine(
                self.url,
                pool_pre_ping=True,
                pool_size=5,
                max_overflow=5,
                pool_timeout=_CONNECT_TIMEOUT_SECONDS,
                connect_args={"timeout": _CONNECT_TIMEOUT_SECONDS},
                # A failed statement's values (names, token digests) stay out of the logs.
                hide_parameters=True,
            )
        if self.backend == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _enable_sqlite_foreign_keys)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A connection inside one transaction: committed on success, rolled back on error.

        Raises:
            StoreUnavailable: when the database cannot be reached or fails.
            BadValue: when it refuses a value of the request (a NUL character in text).
        """
        async with contextlib.AsyncExitStack() as stack:
            if self._turns is not None:
                await stack.enter_async_context(self._turns)
            try:
                async with self.engine.begin() as connection:
                    yield connection
            except (OperationalError, InterfaceError, OSError, TimeoutError) as exc:
                raise StoreUnavailable(type(exc).__name__) from exc
            except DBAPIError as exc:
                if exc.connection_invalidated:
                    raise StoreUnavailable(type(exc).__name__) from exc
                sqlstate = getattr(exc.orig, "sqlstate", None)
                if isinstance(sqlstate, str) and sqlstate.startswith("22"):
                    raise BadValue(sqlstate) from exc
                raise

    async def lock_keys(self, conn: AsyncConnection, keys: list[str]) -> None:
        """Hold each key's lock until the transaction ends (PostgreSQL advisory locks).

        SQLite needs none: its one writer lock, taken by the first write, serialises writers.

        Take keys in a fixed (sorted) order so that two transactions never deadlock.
        """
        if self.backend != "postgresql":
            return
        for key in keys:
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key}
            )

    async def ping(self) -> None:
        """One round trip.

        Raises:
            StoreUnavailable: when it fails.
        """
        async with self.transaction() as connection:
            await connection.execute(text("SELECT 1"))

    async def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent; safe with several replicas).

        PostgreSQL replicas take turns on an advisory lock; processes sharing a SQLite file
        take turns on a lock file next to it.
        """
        async with contextlib.AsyncExitStack() as stack:
            database = make_url(self.url).database
            if self.backend == "sqlite" and not _is_memory(self.url) and database:
                lock = stack.enter_context(Path(f"{database}.migrate-lock").open("a"))  # noqa: ASYNC230, SIM115 - an empty lock file; the stack closes it
                await asyncio.to_thread(fcntl.flock, lock, fcntl.LOCK_EX)
            try:
                async with self.engine.connect() as connection:
                    await connection.run_sync(self._upgrade)
                    await connection.commit()
            except (OperationalError, InterfaceError, OSError, TimeoutError) as exc:
                raise StoreUnavailable(type(exc).__name__) from exc

    def _upgrade(self, connection: Connection) -> None:
        if self.backend == "postgresql":
            connection.execute(text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})"))
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    async def close(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


def alembic_config() -> Config:
    """The Alembic configuration of the packaged migrations (no alembic.ini needed)."""
    config = Config()
    location = resources.files("mdp_scp") / "migrations"
    config.set_main_option("script_location", str(location))
    return config
