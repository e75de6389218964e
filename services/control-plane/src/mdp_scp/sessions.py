"""Login sessions: a signed, opaque secret in the cookie; everything else in the database.

The cookie holds ``<secret>.<HMAC-SHA256 of the secret>``, so a forged or altered cookie is
rejected before any lookup, and the secret carries no user data. The database keeps only the
secret's SHA-256 (a copy of the table yields no working cookie), with the user, role, CSRF
token and expiry; every replica reads the same rows, so any replica accepts any session, a
restart logs nobody out, and logout (or an administrator) deletes the row, so a copied cookie
stops working at once everywhere. Each session also has a public id (``sid``), which names it
in the audit log, the management API and the WDS tokens issued under it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from mdp_scp.accounts import Account
from mdp_scp.schema import sessions, users
from mdp_scp.users import Role, parse_role, role_at_least

__all__ = ["Session", "SessionStore", "Signer", "same_secret"]


def same_secret(sent: str, expected: str) -> bool:
    """Constant-time equality of a secret sent (cookie, header, form field) and the right one.

    False for text that is not ASCII, which no secret of ours is: a header's bytes that are
    not UTF-8 arrive as surrogates, which cannot even be encoded (that was a 500).
    """
    return sent.isascii() and expected.isascii() and hmac.compare_digest(sent, expected)


class Signer:
    """HMAC-SHA256 signatures of short strings (cookie values, CSRF tokens)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            msg = "a signing key needs at least 16 bytes"
            raise ValueError(msg)
        self._key = key

    def signature(self, value: str, purpose: str) -> str:
        """The base64url signature of ``value`` for ``purpose`` (purposes never collide)."""
        mac = hmac.new(self._key, f"{purpose}\x00{value}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")

    def sign(self, value: str, purpose: str) -> str:
        """``value.signature``."""
        return f"{value}.{self.signature(value, purpose)}"

    def unsign(self, signed: str, purpose: str) -> str | None:
        """The value if the signature is right, else None (constant-time comparison)."""
        value, dot, mac = signed.rpartition(".")
        if not dot or not value or not signed.isascii():
            return None
        if not same_secret(mac, self.signature(value, purpose)):
            return None
        return value


@dataclass(frozen=True, slots=True)
class Session:
    """One logged-in browser (or one API token call: ``via == "token"``).

    Attributes:
        session_id: the public id (``sid``); the cookie's secret never leaves the database.
        user: the login name (or OIDC email/subject).
        role: the role granted at login.
        csrf_token: the token every state-changing browser request must echo.
        expires_at: Unix seconds after which the session is void.
        user_id: the database id of the user.
        via: ``password``, ``oidc`` or ``token``.
    """

    session_id: str
    user: str
    role: Role
    csrf_token: str
    expires_at: float
    user_id: int = 0
    via: str = "password"

    @property
    def is_admin(self) -> bool:
        """Whether the session may use runtime controls and manage users."""
        return self.role == "admin"

    def allows(self, needed: Role) -> bool:
        """Whether the session's role grants what ``needed`` grants."""
        return role_at_least(self.role, needed)

    def public(self) -> dict[str, Any]:
        """The JSON form the management API lists (no secret)."""
        return {
            "id": self.session_id,
            "user": self.user,
            "role": self.role,
            "expires_at": self.expires_at,
            "via": self.via,
        }


_PURPOSE = "session"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class SessionStore:
    """Creates, resolves and ends sessions in the database; the time is passed in."""

    def __init__(self, signer: Signer, ttl_seconds: float) -> None:
        self._signer = signer
        self._ttl = ttl_seconds

    @property
    def ttl_seconds(self) -> float:
        """How long a new session lives."""
        return self._ttl

    async def create(
        self,
        conn: AsyncConnection,
        account: Account,
        now: float,
        *,
        address: str = "",
        via: str = "password",
    ) -> tuple[Session, str]:
        """Start a session; returns it and the signed cookie value."""
        await conn.execute(delete(sessions).where(sessions.c.expires_at <= now))
        secret = secrets.token_urlsafe(32)
        session = Session(
            session_id=secrets.token_hex(16),
            user=account.name,
            role=account.role,
            csrf_token=secrets.token_urlsafe(32),
            expires_at=now + self._ttl,
            user_id=account.id,
            via=via,
        )
        await conn.execute(
            insert(sessions).values(
                id=session.session_id,
                secret_digest=_digest(secret),
                user_id=account.id,
                role=session.role,
                csrf_token=session.csrf_token,
                created_at=now,
                expires_at=session.expires_at,
                address=address[:64],
                via=via,
            )
        )
        return session, self._signer.sign(secret, _PURPOSE)

    async def resolve(
        self, conn: AsyncConnection, cookie: str | None, now: float
    ) -> Session | None:
        """The live session named by a cookie value.

        None when the cookie is missing or forged, the session expired or ended, or its user
        is disabled.
        """
        if not cookie:
            return None
        secret = self._signer.unsign(cookie, _PURPOSE)
        if secret is None:
            return None
        query = (
            select(sessions, users.c.name, users.c.disabled, users.c.role.label("user_role"))
            .join(users, users.c.id == sessions.c.user_id)
            .where(sessions.c.secret_digest == _digest(secret), sessions.c.expires_at > now)
        )
        row = (await conn.execute(query)).mappings().first()
        if row is None or row["disabled"]:
            return None
        return Session(
            session_id=row["id"],
            user=row["name"],
            # The user's current role: a demotion takes effect on the next request.
            role=parse_role(row["user_role"]) or "viewer",
            csrf_token=row["csrf_token"],
            expires_at=row["expires_at"],
            user_id=row["user_id"],
            via=row["via"],
        )

    async def end(self, conn: AsyncConnection, session_id: str) -> bool:
        """Log out: the row is deleted, so its cookie is worthless from now on, everywhere."""
        result = await conn.execute(delete(sessions).where(sessions.c.id == session_id))
        return bool(result.rowcount)

    async def end_all(self, conn: AsyncConnection, user_id: int) -> list[str]:
        """End every session of a user; returns their ids (to revoke their WDS tokens)."""
        ids = list(
            (await conn.execute(select(sessions.c.id).where(sessions.c.user_id == user_id)))
            .scalars()
            .all()
        )
        await conn.execute(delete(sessions).where(sessions.c.user_id == user_id))
        return ids

    async def of_user(self, conn: AsyncConnection, user_id: int, now: float) -> list[Session]:
        """The live sessions of a user, newest first."""
        query = (
            select(sessions, users.c.name)
            .join(users, users.c.id == sessions.c.user_id)
            .where(sessions.c.user_id == user_id, sessions.c.expires_at > now)
            .order_by(sessions.c.created_at.desc())
        )
        return [
            Session(
                session_id=row["id"],
                user=row["name"],
                role=parse_role(row["role"]) or "viewer",
                csrf_token="",
                expires_at=row["expires_at"],
                user_id=row["user_id"],
                via=row["via"],
            )
            for row in (await conn.execute(query)).mappings()
        ]
