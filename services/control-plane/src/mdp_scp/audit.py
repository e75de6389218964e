"""The append-only audit log: who did what, when, from where, and with what result.

Every control action, management call and login event is one row. A change and its record
are written in the same transaction (the caller passes its connection), so the log never
claims a change that did not happen, nor misses one that did. Nothing here updates or deletes
rows; retention is the operator's (see docs/operations.md). Details never hold secrets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from mdp_scp.schema import audit_log

__all__ = ["MAX_PAGE", "AuditEntry", "AuditLog"]

MAX_PAGE: Final = 500


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audited event.

    Attributes:
        at: Unix seconds.
        actor: the user (or ``token:<id>`` owner) who acted; the attempted name for logins.
        action: what was done (``login``, ``user.create``, ``control.listener.stop``...).
        target: what it was done to (a user name, a component), or empty.
        result: ``ok``, ``failed``, ``refused``, ``throttled``, or an HTTP status for controls.
        address: the client address.
        detail: extra facts (never secrets).
    """

    at: float
    actor: str
    action: str
    target: str
    result: str
    address: str
    detail: dict[str, Any] | None

    def public(self) -> dict[str, Any]:
        """The JSON form the management API returns."""
        return {
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "result": self.result,
            "address": self.address,
            "detail": self.detail,
        }


class AuditLog:
    """Writes and filters audit records."""

    async def record(
        self,
        conn: AsyncConnection,
        *,
        at: float,
        actor: str,
        action: str,
        result: str,
        target: str = "",
        address: str = "",
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Append one record in the caller's transaction."""
        await conn.execute(
            insert(audit_log).values(
                at=at,
                actor=actor[:200],
                action=action[:64],
                target=target[:300],
                result=result[:32],
                address=address[:64],
                detail=detail,
            )
        )

    async def query(
        self,
        conn: AsyncConnection,
        *,
        actor: str | None = None,
        action: str | None = None,
        before: float | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Records newest first, optionally filtered.

        ``action`` ending in ``.`` selects a family (``user.``); ``before`` pages back in time.
        """
        query = select(audit_log).order_by(audit_log.c.at.desc(), audit_log.c.id.desc())
        if actor:
            query = query.where(audit_log.c.actor == actor)
        if action:
            if action.endswith("."):
                query = query.where(audit_log.c.action.startswith(action, autoescape=True))
            else:
                query = query.where(audit_log.c.action == action)
        if before is not None:
            query = query.where(audit_log.c.at < before)
        query = query.limit(max(1, min(limit, MAX_PAGE)))
        return [
            AuditEntry(
                at=row["at"],
                actor=row["actor"],
                action=row["action"],
                target=row["target"],
                result=row["result"],
                address=row["address"],
                detail=row["detail"],
            )
            for row in (await conn.execute(query)).mappings()
        ]
