"""Ended control-plane sessions: refuse their tokens and close their connections.

The control plane adds the id of every ended login session to one sorted set in the widget
data cache (``KEY_WDS_REVOKED``, scored by the time in ms). The WDS asks it once per ``auth``
(one ZSCORE), and one task per process reads the members added since its last look every
``revocation_poll_seconds`` to close the live connections of those sessions. "Since" is the
highest score read so far, in the SCP's clock, never the WDS's: with the WDS's clock a
minute ahead, a poll starting from its own "now" skipped every revocation. The first look
reads the whole set (a few minutes of ended sessions: the SCP trims older ones). Delivery never
touches it, so the data plane keeps its speed. When the set cannot be read the token is
accepted (counted in ``revocation_errors``): it still dies at its short expiry, and a WDS
whose Redis is down serves no data anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import cast

from mdp_cache.client import REDIS_ERRORS, create_redis
from mdp_cache.keys import KEY_WDS_REVOKED
from mdp_core.logging import get_logger
from mdp_wds.stats import WdsStats

__all__ = ["RevokedSessions"]

_log = get_logger(__name__)
# Members scored a little below the highest seen are read again: two SCP replicas' clocks
# differ a little, and closing an already closed session is harmless.
_OVERLAP_MS = 5_000


class RevokedSessions:
    """Reads the revoked-session set of the widget data cache.

    Args:
        redis_url: the widget data cache.
        poll_seconds: how often new revocations are read.
        stats: the process counters (``revocation_errors``).
    """

    def __init__(self, redis_url: str, poll_seconds: float, stats: WdsStats) -> None:
        self._redis = create_redis(redis_url, client_name="mdp-wds-revocations")
        self._poll = poll_seconds
        self._stats = stats
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._since_ms: float | None = None  # the highest score read (the writers' clock)

    async def is_revoked(self, session_id: str) -> bool:
        """Whether the session has ended (False, counted, when the set cannot be read)."""
        try:
            score = await self._redis.zscore(KEY_WDS_REVOKED.name(), session_id)
        except REDIS_ERRORS as exc:
            self._stats.revocation_errors += 1
            _log.warning("wds_revocation_check_failed", error=type(exc).__name__)
            return False
        return score is not None

    async def read_new(self) -> list[str]:
        """Session ids revoked since the previous call (with a small overlap; all at first).

        Raises:
            RedisError, RedisClusterException, OSError: when the set cannot be read.
        """
        since = self._since_ms
        rows = cast(
            "list[tuple[bytes, float]]",
            await self._redis.zrangebyscore(
                KEY_WDS_REVOKED.name(),
                "-inf" if since is None else since - _OVERLAP_MS,
                "+inf",
                withscores=True,
            ),
        )
        scores = [score for _member, score in rows]
        if scores:
            self._since_ms = max(scores) if since is None else max(since, *scores)
        return [member.decode() for member, _score in rows]

    def start(self, on_revoked: Callable[[str], None]) -> None:
        """Poll in the background, calling ``on_revoked(session_id)`` for each revocation."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(on_revoked))

    async def _run(self, on_revoked: Callable[[str], None]) -> None:
        while not self._stop.is_set():
            try:
                for session_id in await self.read_new():
                    on_revoked(session_id)
            except REDIS_ERRORS as exc:
                self._stats.revocation_errors += 1
                _log.warning("wds_revocation_poll_failed", error=type(exc).__name__)
            # The stop event ends the wait at once; otherwise this is the poll interval.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll):
                    await self._stop.wait()

    async def close(self) -> None:
        """Stop polling and release the client.

        A stop event rather than cancellation: redis-py may swallow a cancellation that lands
        inside a command, which would leave the loop running.
        """
        self._stop.set()
        task, self._task = self._task, None
        if task is not None:
            await task
        await self._redis.aclose()
