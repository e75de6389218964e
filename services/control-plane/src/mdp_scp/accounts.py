"""User accounts in the database: people (password or OIDC) and service accounts (tokens).

Every method takes the caller's connection, so a change and its audit record commit in one
transaction or not at all. Authentication always runs a full scrypt verification, against a
decoy hash for unknown, disabled or password-less names, so response time does not reveal
which names exist.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from mdp_scp.database import Database
from mdp_scp.passwords import generate_password, hash_password, verify_password
from mdp_scp.schema import users
from mdp_scp.users import Role, User, parse_role

__all__ = ["Account", "Accounts", "DuplicateName", "Kind", "NoSuchUser"]

Kind = Literal["person", "service"]


class DuplicateName(ValueError):
    """A user with this name exists already."""


class NoSuchUser(LookupError):
    """No user has this name."""


@dataclass(frozen=True, slots=True)
class Account:
    """One stored user (never its password hash).

    Attributes:
        id: the database id.
        name: the login name.
        role: viewer, trader or admin.
        kind: ``person`` or ``service`` (API tokens only, never a browser login).
        disabled: a disabled account cannot log in, and its sessions and tokens stop working.
        source: ``store`` (managed by the API) or ``settings`` (re-seeded from the environment
            or the users file at every start).
        has_password: whether a local password is set.
        oidc_subject: the linked OIDC subject, if any.
        created_at: Unix seconds.
    """

    id: int
    name: str
    role: Role
    kind: Kind
    disabled: bool
    source: str
    has_password: bool
    oidc_subject: str | None
    created_at: float

    def public(self) -> dict[str, Any]:
        """The JSON form the management API returns."""
        return {
            "name": self.name,
            "role": self.role,
            "kind": self.kind,
            "disabled": self.disabled,
            "source": self.source,
            "has_password": self.has_password,
            "oidc_linked": self.oidc_subject is not None,
            "created_at": self.created_at,
        }


def _account(row: RowMapping) -> Account:
    return Account(
        id=row["id"],
        name=row["name"],
        role=parse_role(row["role"]) or "viewer",
        kind="service" if row["kind"] == "service" else "person",
        disabled=bool(row["disabled"]),
        source=row["source"],
        has_password=bool(row["password_hash"]),
        oidc_subject=row["oidc_subject"],
        created_at=row["created_at"],
    )


class Accounts:
    """Queries and changes of the ``users`` table."""

    def __init__(self) -> None:
        # A valid hash of a random password: verifying against it costs what a real check costs.
        self._decoy = hash_password(generate_password())

    async def get(self, conn: AsyncConnection, name: str) -> Account | None:
        """The account called ``name``, if any."""
        row = (await conn.execute(select(users).where(users.c.name == name))).mappings().first()
        return None if row is None else _account(row)

    async def require(self, conn: AsyncConnection, name: str) -> Account:
        """The account called ``name``.

        Raises:
            NoSuchUser: if there is none.
        """
        account = await self.get(conn, name)
        if account is None:
            raise NoSuchUser(name)
        return account

    async def by_id(self, conn: AsyncConnection, user_id: int) -> Account | None:
        """The account with database id ``user_id``, if any."""
        row = (await conn.execute(select(users).where(users.c.id == user_id))).mappings().first()
        return None if row is None else _account(row)

    async def list(self, conn: AsyncConnection) -> list[Account]:
        """Every account, by name."""
        rows = (await conn.execute(select(users).order_by(users.c.name))).mappings().all()
        return [_account(row) for row in rows]

    async def count(self, conn: AsyncConnection) -> int:
        """How many accounts exist."""
        return int((await conn.execute(select(func.count()).select_from(users))).scalar_one())

    async def has_admin(self, conn: AsyncConnection) -> bool:
        """Whether an enabled administrator exists."""
        query = select(func.count()).where(users.c.role == "admin", users.c.disabled.is_(False))
        return int((await conn.execute(query)).scalar_one()) > 0

    async def authenticate(self, database: Database, name: str, password: str) -> Account | None:
        """The enabled person ``name`` if ``password`` is right, else None (constant cost).

        The row is read in a short transaction and scrypt runs afterwards in a worker thread:
        no connection (nor SQLite lock) is held during the tens of milliseconds it takes.
        """
        async with database.transaction() as conn:
            row = (await conn.execute(select(users).where(users.c.name == name))).mappings().first()
        usable = (
            row is not None
            and bool(row["password_hash"])
            and not row["disabled"]
            and row["kind"] == "person"
        )
        stored = row["password_hash"] if usable and row is not None else self._decoy
        matches = await asyncio.to_thread(verify_password, password, stored)
        if not usable or not matches or row is None:
            return None
        return _account(row)

    async def create(
        self,
        conn: AsyncConnection,
        name: str,
        role: Role,
        *,
        now: float,
        password_hash: str = "",
        kind: Kind = "person",
        source: str = "store",
        oidc_subject: str | None = None,
    ) -> Account:
        """Add an account.

        Raises:
            DuplicateName: if the name is taken (checked by the database's unique index, so
                two replicas creating the same name at once cannot both succeed).
        """
        values = {
            "name": name,
            "role": role,
            "password_hash": password_hash,
            "kind": kind,
            "disabled": False,
            "source": source,
            "oidc_subject": oidc_subject,
            "created_at": now,
            "updated_at": now,
        }
        try:
            async with conn.begin_nested():
                await conn.execute(insert(users).values(**values))
        except IntegrityError as exc:
            raise DuplicateName(name) from exc
        return await self.require(conn, name)

    async def _change(self, conn: AsyncConnection, name: str, now: float, **values: Any) -> None:
        result = await conn.execute(
            update(users).where(users.c.name == name).values(updated_at=now, **values)
        )
        if result.rowcount == 0:
            raise NoSuchUser(name)

    async def set_role(self, conn: AsyncConnection, name: str, role: Role, now: float) -> None:
        """Change the role; live sessions and tokens follow it from their next request."""
        await self._change(conn, name, now, role=role)

    async def set_disabled(
        self, conn: AsyncConnection, name: str, disabled: bool, now: float
    ) -> None:
        """Disable or enable an account."""
        await self._change(conn, name, now, disabled=disabled)

    async def set_password(
        self, conn: AsyncConnection, name: str, password_hash: str, now: float
    ) -> None:
        """Replace the password hash."""
        await self._change(conn, name, now, password_hash=password_hash)

    async def seed(self, conn: AsyncConnection, seeded: Iterable[User], now: float) -> None:
        """Write the users of the settings and users file: they win over stored values."""
        for user in seeded:
            existing = await self.get(conn, user.name)
            if existing is None:
                await self.create(
                    conn,
                    user.name,
                    user.role,
                    now=now,
                    password_hash=user.password_hash,
                    source="settings",
                )
            else:
                await self._change(
                    conn,
                    user.name,
                    now,
                    role=user.role,
                    password_hash=user.password_hash,
                    source="settings",
                )

    async def oidc_login(
        self, conn: AsyncConnection, subject: str, name: str, role: Role, now: float
    ) -> Account | None:
        """The account linked to ``subject``, linking or creating it on the first login.

        The configured admin subjects are promoted to admin; nobody is demoted here (an
        administrator changes roles with the management API). A disabled account gets None,
        and so does a service account (API tokens only: never a browser login, nor linked).
        """
        row = (
            (await conn.execute(select(users).where(users.c.oidc_subject == subject)))
            .mappings()
            .first()
        )
        account = None if row is None else _account(row)
        if account is None:
            existing = await self.get(conn, name)
            if existing is not None and existing.kind == "service":
                return None
            if existing is not None and existing.oidc_subject is None:
                # Same name as a local account: link it, so one person has one record.
                await self._change(conn, name, now, oidc_subject=subject)
                account = await self.require(conn, name)
            elif existing is None:
                account = await self.create(conn, name, role, now=now, oidc_subject=subject)
            else:
                return None  # the name belongs to another OIDC subject
        if account.disabled or account.kind == "service":
            return None
        if role == "admin" and account.role != "admin":
            await self._change(conn, account.name, now, role="admin")
            account = await self.require(conn, account.name)
        return account
