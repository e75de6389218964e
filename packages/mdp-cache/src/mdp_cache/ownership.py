"""Which processor owns which partition of the MDQ: membership and leases in MDC.

With a partitioned topology (``MDP_MDQ_PARTITIONS`` above one), each processor worker announces
itself in a members set every second (:data:`~mdp_cache.keys.KEY_PROCESSOR_MEMBERS`, expiry by
Redis's own clock, so the machines' clocks never matter) and reads who else is alive. Every
member computes the owner of each partition from the same member list (:func:`assignment`:
rendezvous hashing capped at a fair share), so they agree without talking, every member owns
as many partitions as any other give or take one, and most partitions stay where they are
when a member comes or goes.

A member consumes a partition only while it holds the partition's lease
(:data:`~mdp_cache.keys.KEY_PARTITION_LEASE`, ``SET NX PX``, renewed each round and released
once the partition's last events are written), so a partition being handed over waits for its
old owner to finish instead of being read by two at once. Only a holder that stalls past its
lease can overlap with the next owner; the lattice merges of MDC keep every figure right even
then.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Final, Protocol, runtime_checkable

from redis.asyncio import Redis

from mdp_cache.keys import KEY_PARTITION_LEASE, KEY_PROCESSOR_MEMBERS

__all__ = [
    "LEASE_LUA",
    "MemoryOwnership",
    "Ownership",
    "RedisOwnership",
    "assignment",
    "fair_share",
    "owner",
]

LEASE_LUA: Final = """
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
"""Take the lease ``KEYS[1]`` for ``ARGV[1]`` if free, renew it if that holder has it."""

_RELEASE_LUA: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

_MEMBERS_LUA: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
if ARGV[1] ~= '' then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], ttl * 4)
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""


def _weight(member: str, partition: int) -> bytes:
    return hashlib.blake2b(f"{partition}:{member}".encode(), digest_size=8).digest()


def assignment(members: Sequence[str], partitions: int) -> dict[int, str]:
    """Who should own each partition: balanced, and the same wherever it is computed.

    Partitions are taken in order; each goes to the member of highest random weight for it
    (rendezvous hashing) that still has room, where every member has room for
    ``partitions // len(members)`` and the first ones to fill up may take one more, until the
    remainder is used. So every member owns the floor or the ceiling of its fair share (plain
    rendezvous hashing can give one member all of a few partitions), and most partitions stay
    with their owner when members come or go.
    """
    unique = sorted(set(members))
    if not unique:
        return {}
    floor, extra = divmod(partitions, len(unique))
    load = dict.fromkeys(unique, 0)
    owners: dict[int, str] = {}
    for partition in range(partitions):
        ranked = sorted(unique, key=lambda m: (_weight(m, partition), m), reverse=True)
        for member in ranked:
            if load[member] < floor or (load[member] == floor and extra > 0):
                if load[member] == floor:
                    extra -= 1
                load[member] += 1
                owners[partition] = member
                break
    return owners


def owner(partition: int, members: Sequence[str], partitions: int) -> str | None:
    """The member that should own ``partition`` of ``partitions``; None without members."""
    return assignment(members, partitions).get(partition)


def fair_share(member: str, members: Sequence[str], partitions: int) -> set[int]:
    """The partitions ``member`` should own among ``members`` (all of them when alone)."""
    return {n for n, m in assignment(members, partitions).items() if m == member}


@runtime_checkable
class Ownership(Protocol):
    """**Protocol:** membership and partition leases shared by every processor of a group."""

    async def members(self, member: str, ttl_ms: int) -> list[str]:
        """Announce ``member`` for ``ttl_ms`` ("" announces nothing); the live members."""
        ...

    async def hold(self, partitions: Iterable[int], member: str, ttl_ms: int) -> set[int]:
        """Take or renew the leases of ``partitions``; the ones ``member`` holds now."""
        ...

    async def release(self, partitions: Iterable[int], member: str) -> None:
        """Give up the leases of ``partitions`` that ``member`` holds."""
        ...


class RedisOwnership:
    """Membership and leases in MDC (one pipeline per call, one script per key).

    Args:
        redis: the MDC client.
        group: the consumer group (one namespace per processor kind).
    """

    def __init__(self, redis: Redis, group: str) -> None:
        self._redis = redis
        self._group = group

    async def members(self, member: str, ttl_ms: int) -> list[str]:
        """See :meth:`Ownership.members`."""
        key = KEY_PROCESSOR_MEMBERS.name(group=self._group)
        found = await self._redis.eval(_MEMBERS_LUA, 1, key, member, ttl_ms)
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in found)

    async def hold(self, partitions: Iterable[int], member: str, ttl_ms: int) -> set[int]:
        """See :meth:`Ownership.hold`."""
        wanted = sorted(set(partitions))
        if not wanted:
            return set()
        async with self._redis.pipeline(transaction=False) as pipe:
            for partition in wanted:
                key = KEY_PARTITION_LEASE.name(group=self._group, partition=str(partition))
                pipe.execute_command("EVAL", LEASE_LUA, 1, key, member, ttl_ms)
            results = await pipe.execute()
        return {partition for partition, ok in zip(wanted, results, strict=True) if ok}

    async def release(self, partitions: Iterable[int], member: str) -> None:
        """See :meth:`Ownership.release`."""
        wanted = sorted(set(partitions))
        if not wanted:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for partition in wanted:
                key = KEY_PARTITION_LEASE.name(group=self._group, partition=str(partition))
                pipe.execute_command("EVAL", _RELEASE_LUA, 1, key, member)
            await pipe.execute()


class MemoryOwnership:
    """Membership and leases of the processors of one process (tests, the in-process demo).

    Time is the caller's: :meth:`expire` drops a member or lease as if its time ran out.
    """

    def __init__(self) -> None:
        self.live: set[str] = set()
        self.leases: dict[int, str] = {}

    async def members(self, member: str, ttl_ms: int) -> list[str]:
        """See :meth:`Ownership.members`."""
        del ttl_ms
        if member:
            self.live.add(member)
        return sorted(self.live)

    async def hold(self, partitions: Iterable[int], member: str, ttl_ms: int) -> set[int]:
        """See :meth:`Ownership.hold`."""
        del ttl_ms
        held: set[int] = set()
        for partition in partitions:
            if self.leases.setdefault(partition, member) == member:
                held.add(partition)
        return held

    async def release(self, partitions: Iterable[int], member: str) -> None:
        """See :meth:`Ownership.release`."""
        for partition in partitions:
            if self.leases.get(partition) == member:
                del self.leases[partition]

    def expire(self, member: str) -> None:
        """Forget ``member`` and every lease it holds (its time ran out)."""
        self.live.discard(member)
        for partition in [p for p, m in self.leases.items() if m == member]:
            del self.leases[partition]
