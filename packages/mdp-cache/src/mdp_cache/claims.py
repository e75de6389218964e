"""Who took a queue batch first: duplicate detection shared by every worker and replica.

A batch id published twice (a listener retry, a replayed capture) can land on two processors at
once; a per-process memory of seen ids cannot tell. Each consumer therefore *claims* a batch id
in MDC with ``SET NX`` (:data:`~mdp_cache.keys.KEY_BATCH_CLAIM`, bounded by its TTL) before
applying it: the first claim wins, every later copy is a duplicate. A message the broker
*redelivers* is not claimed again (its first consumer died before acking); the "applied" mark
written with the state decides for those.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from redis.asyncio import Redis

from mdp_cache.keys import KEY_BATCH_CLAIM

__all__ = ["BatchClaims", "MemoryBatchClaims", "RedisBatchClaims"]


@runtime_checkable
class BatchClaims(Protocol):
    """**Protocol:** claims batch ids once across every consumer of a group."""

    async def claim(self, batches: Sequence[str]) -> set[str]:
        """Claim each batch id; return those this caller claimed first (the rest are copies)."""
        ...


class RedisBatchClaims:
    """Claims in MDC: one pipelined ``SET NX EX`` per delivery batch.

    Args:
        redis: the MDC client.
        consumer: the consumer group (one namespace per processor kind).
        holder: this instance's name, stored as the claim's value (for operators).
    """

    def __init__(self, redis: Redis, consumer: str, holder: str) -> None:
        self._redis = redis
        self._consumer = consumer
        self._holder = holder.encode()

    async def claim(self, batches: Sequence[str]) -> set[str]:
        """See :meth:`BatchClaims.claim`."""
        if not batches:
            return set()
        ttl = KEY_BATCH_CLAIM.ttl
        async with self._redis.pipeline(transaction=False) as pipe:
            for batch in batches:
                key = KEY_BATCH_CLAIM.name(consumer=self._consumer, batch=batch)
                pipe.set(key, self._holder, nx=True, ex=ttl)
            results = await pipe.execute()
        return {batch for batch, won in zip(batches, results, strict=True) if won}


class MemoryBatchClaims:
    """Claims in a dict shared by the consumers of one process (tests, the in-process demo)."""

    def __init__(self) -> None:
        self.claimed: set[str] = set()

    async def claim(self, batches: Sequence[str]) -> set[str]:
        """See :meth:`BatchClaims.claim`."""
        won = {batch for batch in dict.fromkeys(batches) if batch not in self.claimed}
        self.claimed.update(won)
        return won
