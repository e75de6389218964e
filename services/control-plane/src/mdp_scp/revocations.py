"""Revoking WDS tokens when their login session ends.

A WDS token carries the id of the session it was issued under (``sid``). When a session ends
(logout, an administrator ending it, the user disabled), the SCP adds that id to one sorted
set in the widget data cache (the Redis the WDS already reads), scored by the time. The WDS
checks the set once per ``auth`` and polls it for new members every second or two to close
live connections, so revocation costs the data plane one cheap call per process, never one per
message. Entries older than the longest token life are trimmed: such tokens expired anyway.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from mdp_cache.keys import KEY_WDS_REVOKED

__all__ = ["RevocationWriter", "Revocations"]


class RevocationWriter(Protocol):
    """The Redis commands used (redis.asyncio.Redis fits)."""

    async def zadd(self, name: str, mapping: dict[str, float]) -> object:
        """Add members with scores."""
        ...

    async def zremrangebyscore(self, name: str, min: float, max: float) -> object:
        """Remove members scored within [min, max]."""
        ...


class Revocations:
    """Publishes ended session ids for the WDS.

    Args:
        redis: a client on the widget data cache.
        token_ttl_seconds: the longest life of a WDS token; older entries are trimmed.
    """

    def __init__(self, redis: RevocationWriter, token_ttl_seconds: float) -> None:
        self._redis = redis
        self._ttl = token_ttl_seconds

    async def revoke(self, session_ids: Iterable[str], now: float) -> None:
        """Mark sessions ended (idempotent)."""
        ids = list(session_ids)
        if not ids:
            return
        key = KEY_WDS_REVOKED.name()
        now_ms = now * 1000
        await self._redis.zadd(key, dict.fromkeys(ids, now_ms))
        await self._redis.zremrangebyscore(key, 0, now_ms - (self._ttl + 60) * 1000)
