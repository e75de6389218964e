"""The Redis backend of analyzer state (MDC): one pipeline per flush, merges done in Lua.

:class:`RedisState` applies the operations of :mod:`mdp_cache.ops`. Row writes
(:class:`~mdp_cache.ops.PutNewer`) are grouped by target keys and sent as a few ``EVALSHA``
calls carrying hundreds of rows each; the script keeps, per member, the row with the highest
version (ties broken by payload digest) and updates the board scores in the same atomic step.
Several processor replicas can therefore write the same symbols in any order, any number of
times, and converge on the same rows and boards.

The script is loaded once with ``SCRIPT LOAD``; if the server forgets it (restart,
``SCRIPT FLUSH``) the flush reloads it and retries once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Final

import msgspec
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError

from mdp_cache.keys import KEY_SEEN_BATCH
from mdp_cache.ops import PutNewer, RankedMember, SetValue, StateOp, TopRead

__all__ = ["MERGE_ROWS_LUA", "RedisState"]

ROWS_PER_CALL: Final = 256
"""Rows per EVALSHA: large enough to amortise the call, small enough not to stall Redis."""

MERGE_ROWS_LUA: Final = """
-- KEYS[1] rows hash, KEYS[2] versions hash, KEYS[3..] board sorted sets
-- ARGV[1] ttl; ARGV[2] msgpack array of rows, each
--   [member, version (decimal string), payload, score per board set ('' removes)]
-- One packed argument instead of several per row: argument encoding on the client is the
-- dominant cost of large calls.
local ttl = tonumber(ARGV[1])
local rows = cmsgpack.unpack(ARGV[2])
local boards = #KEYS - 2
local won = 0
for _, row in ipairs(rows) do
  local member, version, payload = row[1], tonumber(row[2]), row[3]
  local wins = false
  local old = redis.call('HGET', KEYS[2], member)
  if not old then
    wins = true
  else
    local ov = tonumber(old)
    if version > ov then
      wins = true
    elseif version == ov then
      local prev = redis.call('HGET', KEYS[1], member)
      if (not prev) or redis.sha1hex(payload) > redis.sha1hex(prev) then
        wins = true
      end
    end
  end
  if wins then
    redis.call('HSET', KEYS[1], member, payload)
    redis.call('HSET', KEYS[2], member, row[2])
    for j = 1, boards do
      local score = row[3 + j]
      if score == '' then
        redis.call('ZREM', KEYS[2 + j], member)
      else
        redis.call('ZADD', KEYS[2 + j], score, member)
      end
    end
    won = won + 1
  end
end
for k = 1, #KEYS do
  redis.call('EXPIRE', KEYS[k], ttl)
end
return won
"""

_LEASE_LUA: Final = """
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

_PACK: Final = msgspec.msgpack.Encoder().encode


def _text(payload: bytes) -> str:
    """Payloads travel as msgpack strings: the Lua cmsgpack of Redis reads no ``bin`` type."""
    return payload.decode("utf-8", "surrogateescape")


def _scores(scores: tuple[float | None, ...]) -> list[float | str]:
    return ["" if score is None else score for score in scores]


_GroupKey = tuple[str, str, tuple[str, ...], int]


class RedisState:
    """Applies state operations to MDC and answers board reads.

    Args:
        redis: The MDC client.
    """

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._sha: str | None = None

    async def load_scripts(self) -> None:
        """Load the merge script (idempotent; called lazily by :meth:`apply`)."""
        self._sha = str(await self._redis.script_load(MERGE_ROWS_LUA))

    async def apply(self, ops: Sequence[StateOp], *, marks: Sequence[str] = ()) -> None:
        """Apply ``ops`` and set the ``marks`` keys in one MULTI/EXEC pipeline.

        Being one transaction, a crash can never leave a batch marked as applied without its
        state, nor the state written without the mark.
        """
        if not ops and not marks:
            return
        if self._sha is None:
            await self.load_scripts()
        try:
            await self._send(ops, marks)
        except NoScriptError:
            await self.load_scripts()
            await self._send(ops, marks)
        except ResponseError as exc:  # inside MULTI the error arrives wrapped
            if "NOSCRIPT" not in str(exc):
                raise
            await self.load_scripts()
            await self._send(ops, marks)

    async def _send(self, ops: Sequence[StateOp], marks: Sequence[str]) -> None:
        assert self._sha is not None
        pipe = self._redis.pipeline(transaction=True)
        groups: dict[_GroupKey, list[PutNewer]] = defaultdict(list)
        for op in ops:
            if isinstance(op, PutNewer):
                groups[(op.rows_key, op.versions_key, op.score_keys, op.ttl)].append(op)
            elif isinstance(op, SetValue):
                pipe.set(op.key, op.payload, ex=op.ttl)
        for (rows_key, versions_key, boards, ttl), rows in groups.items():
            for start in range(0, len(rows), ROWS_PER_CALL):
                packed = _PACK(
                    [
                        (row.member, str(row.version), _text(row.payload), *_scores(row.scores))
                        for row in rows[start : start + ROWS_PER_CALL]
                    ]
                )
                pipe.evalsha(
                    self._sha, 2 + len(boards), rows_key, versions_key, *boards, ttl, packed
                )
        ttl_seen = KEY_SEEN_BATCH.ttl or 600
        for mark in marks:
            pipe.set(mark, b"1", ex=ttl_seen)
        await pipe.execute()

    async def seen(self, marks: Sequence[str]) -> set[str]:
        """Which ``marks`` are already set (one ``MGET``)."""
        if not marks:
            return set()
        values = await self._redis.mget(list(marks))
        return {mark for mark, value in zip(marks, values, strict=True) if value is not None}

    async def top(self, reads: Sequence[TopRead]) -> list[list[RankedMember]]:
        """Answer board reads in two pipelined round trips (ranks, then rows)."""
        if not reads:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for read in reads:
            pipe.zrevrange(read.board_key, 0, read.limit - 1, withscores=True)
        ranked: list[list[tuple[bytes, float]]] = await pipe.execute()
        pipe = self._redis.pipeline(transaction=False)
        for read, members in zip(reads, ranked, strict=True):
            if members:
                pipe.hmget(read.rows_key, [member for member, _ in members])
        rows_iter = iter(await pipe.execute())
        answers: list[list[RankedMember]] = []
        for members in ranked:
            if not members:
                answers.append([])
                continue
            payloads: list[bytes | None] = next(rows_iter)
            answer = [
                RankedMember(member.decode(), float(score), payload)
                for (member, score), payload in zip(members, payloads, strict=True)
                if payload is not None
            ]
            answers.append(answer)
        return answers

    async def hold_lease(self, key: str, holder: str, ttl_ms: int) -> bool:
        """Take the lease ``key`` if free, renew it if ``holder`` has it (atomic, one call)."""
        return bool(await self._redis.eval(_LEASE_LUA, 1, key, holder, ttl_ms))
