"""The revoked-session set unreadable: the check says "not revoked" and counts, the poll goes on.

A Redis Cluster between losing a master and promoting its replica raises
``SlotNotCoveredError``, which is no ``RedisError``: it used to escape both.
"""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import SlotNotCoveredError

from mdp_wds.revocations import RevokedSessions
from mdp_wds.stats import WdsStats


class Unusable:
    def __init__(self, error: Exception, polled: asyncio.Event) -> None:
        self.error = error
        self.polled = polled
        self.polls = 0

    async def zscore(self, *args: object) -> float | None:
        raise self.error

    async def zrangebyscore(self, *args: object, **kwargs: object) -> list[tuple[bytes, float]]:
        self.polls += 1
        if self.polls >= 2:
            self.polled.set()
        raise self.error

    async def aclose(self) -> None:
        pass


@pytest.mark.parametrize(
    "error",
    [SlotNotCoveredError("Slot 3 is not covered by the cluster."), RedisConnectionError("down")],
    ids=type,
)
async def test_an_unreadable_set_is_counted_and_polling_goes_on(error: Exception) -> None:
    stats = WdsStats()
    revoked = RevokedSessions("redis://127.0.0.1:1/0", 0.001, stats)
    real = revoked._redis
    polled = asyncio.Event()
    revoked._redis = Unusable(error, polled)  # type: ignore[assignment] # only these calls
    try:
        assert await revoked.is_revoked("session-1") is False
        assert stats.revocation_errors == 1
        revoked.start(lambda session_id: None)
        async with asyncio.timeout(10):
            await polled.wait()  # a second poll: the first failure did not end the loop
        assert stats.revocation_errors >= 3
    finally:
        await revoked.close()
        await real.aclose()
