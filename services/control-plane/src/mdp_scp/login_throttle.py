"""The login attempt limit: a sliding window of failures per key, shared by every replica.

The SCP keeps two limits: one keyed by user name *and* client address (stops guessing one
account's password, while a stranger's guesses cannot lock the real user out) and a looser one
keyed by client address (stops one client spraying many names). Addresses are counted per
IPv6 /64.

Failures are rows in the database, so replicas share them. The check is exact under
concurrency: one transaction records the attempt and counts, holding the keys' lock meanwhile
(a PostgreSQL advisory transaction lock per key, taken in sorted order; SQLite's single writer
lock does the same on one machine), so of n concurrent attempts exactly the first ``max`` see
a count within the limit, whichever replicas they reach. An attempt over the limit takes its
row back in the same transaction (a blocked client does not extend its own block) and is
refused before the password is checked, so it burns no scrypt time. A success clears the
user's counter and withdraws its own row from the address's, nothing more: a valid login must
not launder a spray.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from mdp_scp.database import Database
from mdp_scp.schema import login_failures

__all__ = ["Attempt", "LoginThrottle"]


@dataclass(frozen=True, slots=True)
class Attempt:
    """A recorded attempt: the ids of its failure rows, and how long to wait when refused."""

    row_ids: tuple[int, ...]
    retry_after: float

    @property
    def allowed(self) -> bool:
        """Whether the password may be checked."""
        return self.retry_after <= 0


class LoginThrottle:
    """Sliding-window failure limits over several keys, each with its own maximum.

    Args:
        database: the shared store.
        window_seconds: how long a failure counts.
    """

    def __init__(self, database: Database, window_seconds: float) -> None:
        self._db = database
        self._window = window_seconds

    async def attempt(self, limits: dict[str, int], now: float) -> Attempt:
        """Record one attempt against every key of ``limits`` (key -> max failures) and check.

        Raises:
            StoreUnavailable: when the database cannot be reached (the login then fails).
        """
        ids: list[int] = []
        wait = 0.0
        async with self._db.transaction() as conn:
            await self._db.lock_keys(conn, sorted(limits))
            await conn.execute(
                delete(login_failures).where(login_failures.c.at <= now - self._window)
            )
            for key in limits:
                result = await conn.execute(
                    insert(login_failures).values(key=key, at=now).returning(login_failures.c.id)
                )
                ids.append(int(result.scalar_one()))
            for key, limit in limits.items():
                wait = max(wait, await self._wait(conn, key, limit, now))
            if wait > 0:
                await conn.execute(delete(login_failures).where(login_failures.c.id.in_(ids)))
        return Attempt(tuple(ids), wait)

    async def _wait(self, conn: AsyncConnection, key: str, limit: int, now: float) -> float:
        query = (
            select(login_failures.c.at)
            .where(login_failures.c.key == key, login_failures.c.at > now - self._window)
            .order_by(login_failures.c.at.desc())
            .limit(limit + 1)
        )
        times = list((await conn.execute(query)).scalars())
        if len(times) <= limit:
            return 0.0
        # times[0] is this attempt; it is free again once the limit-th older failure expires.
        return float(times[limit]) + self._window - now

    async def succeeded(self, conn: AsyncConnection, user_key: str, attempt: Attempt) -> None:
        """A correct password: forget the user key's failures and withdraw this attempt."""
        await conn.execute(delete(login_failures).where(login_failures.c.key == user_key))
        await conn.execute(delete(login_failures).where(login_failures.c.id.in_(attempt.row_ids)))

    async def count(self, key: str, now: float) -> int:
        """Failures of ``key`` within the window (for tests and the admin page)."""
        async with self._db.transaction() as conn:
            query = select(func.count()).where(
                login_failures.c.key == key, login_failures.c.at > now - self._window
            )
            return int((await conn.execute(query)).scalar_one())
