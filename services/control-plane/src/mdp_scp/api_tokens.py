"""Personal API tokens and service-account tokens: bearer credentials for scripts.

A token is ``mdp_<id>_<secret>``: the id names it (in lists and the audit log), the secret is
shown once at creation and only its SHA-256 is stored. Each token has its own role, at most
its owner's, checked again at every use (demoting the owner demotes the token), an expiry, and
can be revoked; a disabled owner's tokens stop working at once.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from mdp_scp.schema import api_tokens, users
from mdp_scp.sessions import Session
from mdp_scp.users import ROLES, Role, parse_role

__all__ = ["TOKEN_PREFIX", "ApiToken", "ApiTokens"]

TOKEN_PREFIX = "mdp_"  # noqa: S105 - a prefix that marks the format, not a secret


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A stored token (never its secret)."""

    id: str
    name: str
    owner: str
    role: Role
    created_at: float
    expires_at: float
    revoked_at: float | None
    last_used_at: float | None

    def public(self) -> dict[str, Any]:
        """The JSON form the API lists."""
        return {
            "id": self.id,
            "name": self.name,
            "owner": self.owner,
            "role": self.role,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
            "last_used_at": self.last_used_at,
        }


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _lower(a: Role, b: Role) -> Role:
    return a if ROLES.index(a) <= ROLES.index(b) else b


class ApiTokens:
    """Creates, lists, revokes and resolves API tokens."""

    async def create(
        self,
        conn: AsyncConnection,
        *,
        user_id: int,
        name: str,
        role: Role,
        now: float,
        expires_at: float,
    ) -> tuple[str, str]:
        """Store a new token; returns its id and the full token (show it once)."""
        token_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        await conn.execute(
            insert(api_tokens).values(
                id=token_id,
                digest=_digest(secret),
                user_id=user_id,
                name=name,
                role=role,
                created_at=now,
                expires_at=expires_at,
            )
        )
        return token_id, f"{TOKEN_PREFIX}{token_id}_{secret}"

    async def list(self, conn: AsyncConnection, user_id: int | None = None) -> list[ApiToken]:
        """Tokens of one user (or every token), newest first."""
        query = (
            select(api_tokens, users.c.name.label("owner"))
            .join(users, users.c.id == api_tokens.c.user_id)
            .order_by(api_tokens.c.created_at.desc())
        )
        if user_id is not None:
            query = query.where(api_tokens.c.user_id == user_id)
        return [
            ApiToken(
                id=row["id"],
                name=row["name"],
                owner=row["owner"],
                role=parse_role(row["role"]) or "viewer",
                created_at=row["created_at"],
                expires_at=row["expires_at"],
                revoked_at=row["revoked_at"],
                last_used_at=row["last_used_at"],
            )
            for row in (await conn.execute(query)).mappings()
        ]

    async def revoke(
        self, conn: AsyncConnection, token_id: str, now: float, user_id: int | None = None
    ) -> bool:
        """Revoke a token (only the owner's when ``user_id`` is given); False if none."""
        query = update(api_tokens).where(
            api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None)
        )
        if user_id is not None:
            query = query.where(api_tokens.c.user_id == user_id)
        result = await conn.execute(query.values(revoked_at=now))
        return bool(result.rowcount)

    async def resolve(self, conn: AsyncConnection, token: str, now: float) -> Session | None:
        """The caller a bearer token stands for, or None (unknown, revoked, expired, disabled)."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        token_id, sep, secret = token[len(TOKEN_PREFIX) :].partition("_")
        if not sep or not secret:
            return None
        query = (
            select(
                api_tokens,
                users.c.name.label("owner"),
                users.c.role.label("owner_role"),
                users.c.disabled,
            )
            .join(users, users.c.id == api_tokens.c.user_id)
            .where(api_tokens.c.id == token_id)
        )
        row = (await conn.execute(query)).mappings().first()
        if row is None or not secrets.compare_digest(row["digest"], _digest(secret)):
            return None
        if row["disabled"] or row["revoked_at"] is not None or row["expires_at"] <= now:
            return None
        await conn.execute(
            update(api_tokens).where(api_tokens.c.id == token_id).values(last_used_at=now)
        )
        role = _lower(
            parse_role(row["role"]) or "viewer", parse_role(row["owner_role"]) or "viewer"
        )
        return Session(
            session_id=f"token:{token_id}",
            user=row["owner"],
            role=role,
            csrf_token="",
            expires_at=row["expires_at"],
            user_id=row["user_id"],
            via="token",
        )
