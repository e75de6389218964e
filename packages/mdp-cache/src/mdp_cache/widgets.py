"""Typed writers of the widget data cache (WDC).

Every write goes through the shape its :class:`~mdp_cache.keys.Feed` declares, so the snapshot
key and the channel of a feed always agree: a ``value`` feed is ``SET name payload EX ttl``, a
``list`` feed is ``LPUSH`` + ``LTRIM`` to ``max_len`` + ``EXPIRE``; then, when asked, the same
bytes are published on the channel of the same name (the script of :class:`WidgetWriter` does
exactly that for many value documents at once). A whole flush is one pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Protocol

import msgspec
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import InvalidResponse, NoScriptError, ResponseError

from mdp_cache.keys import Feed

__all__ = ["SET_PUBLISH_LUA", "WidgetItem", "WidgetWriter", "queue_widget_write"]

SET_PUBLISH_LUA: Final = """
-- KEYS: feed names; ARGV[1]: msgpack array of [payload, ttl seconds, publish?], one per key
local items = cmsgpack.unpack(ARGV[1])
for i = 1, #KEYS do
  local item = items[i]
  redis.call('SET', KEYS[i], item[1], 'EX', item[2])
  if item[3] then
    redis.call('PUBLISH', KEYS[i], item[1])
  end
end
return #KEYS
"""

_PACK: Final = msgspec.msgpack.Encoder().encode
_VALUES_PER_CALL: Final = 256
"""Documents per script call: amortises the call without stalling Redis for long."""


class WidgetItem(Protocol):
    """**Protocol:** one widget write (``mdp_analyzers.typing.WidgetWrite`` fits)."""

    @property
    def feed(self) -> Feed:
        """The feed written."""
        ...

    @property
    def name(self) -> str:
        """The concrete feed name (key and channel)."""
        ...

    @property
    def payload(self) -> bytes:
        """The encoded document."""
        ...

    @property
    def publish(self) -> bool:
        """Whether to publish it as well."""
        ...


def queue_widget_write(
    pipe: Pipeline, feed: Feed, name: str, payload: bytes, *, publish: bool = True
) -> int:
    """Queue one feed write on ``pipe``; return how many commands were queued.

    Raises:
        ValueError: ``name`` is not a name of ``feed`` (a key/channel mismatch in the making).
    """
    if not feed.matches(name):
        msg = f"{name!r} is not a name of feed {feed.template!r}"
        raise ValueError(msg)
    if feed.shape == "value":
        pipe.set(name, payload, ex=feed.ttl)
        queued = 1
    else:
        cap = feed.max_len if feed.max_len is not None else 1
        pipe.lpush(name, payload)
        pipe.ltrim(name, 0, cap - 1)
        pipe.expire(name, feed.ttl)
        queued = 3
    if publish:
        pipe.publish(name, payload)
        queued += 1
    return queued


class WidgetWriter:
    """Applies batches of widget writes to WDC, one pipeline per batch.

    ``value`` writes, the bulk of the traffic (a quote record per changed symbol per flush), go
    through a small Lua script that stores and publishes a few hundred documents per call, so
    a flush costs a handful of commands instead of two per document; ``list`` writes are
    queued as plain commands. Everything travels in one non-transactional pipeline.

    Args:
        redis: The WDC client.
    """

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._sha: str | None = None
        self._plain = False

    async def write(self, writes: Sequence[WidgetItem]) -> int:
        """Write (and publish) every item in one pipeline.

        Returns:
            The number of Redis commands sent.

        Raises:
            ValueError: a write names something that is not a name of its feed.
        """
        if not writes:
            return 0
        if self._sha is None and not self._plain:
            await self._choose_mode()
        if self._plain:
            return await self._send_plain(writes)
        try:
            return await self._send(writes)
        except NoScriptError:
            self._sha = str(await self._redis.script_load(SET_PUBLISH_LUA))
            return await self._send(writes)
        except ResponseError as exc:
            if "cmsgpack" not in str(exc):
                raise
            # A Redis without Lua cmsgpack (an emulator): same effects, one command each.
            self._plain = True
            return await self._send_plain(writes)

    async def _choose_mode(self) -> None:
        """Use the script when the server's Lua has ``cmsgpack``, plain commands otherwise.

        Emulators (fakeredis) lack it, and some answer a script that uses it with a reply the
        client cannot even parse, so the capability is probed once instead of inferred from
        an error.
        """
        try:
            kind = await self._redis.eval("return type(cmsgpack)", 0)
        except (ResponseError, InvalidResponse):
            kind = None
        if kind in (b"table", "table"):
            self._sha = str(await self._redis.script_load(SET_PUBLISH_LUA))
        else:
            self._plain = True

    async def _send_plain(self, writes: Sequence[WidgetItem]) -> int:
        pipe = self._redis.pipeline(transaction=False)
        sent = 0
        for item in writes:
            sent += queue_widget_write(
                pipe, item.feed, item.name, item.payload, publish=item.publish
            )
        await pipe.execute()
        return sent

    async def _send(self, writes: Sequence[WidgetItem]) -> int:
        assert self._sha is not None
        pipe = self._redis.pipeline(transaction=False)
        sent = 0
        values: list[WidgetItem] = []
        for item in writes:
            if item.feed.shape == "value":
                if not item.feed.matches(item.name):
                    msg = f"{item.name!r} is not a name of feed {item.feed.template!r}"
                    raise ValueError(msg)
                values.append(item)
            else:
                sent += queue_widget_write(
                    pipe, item.feed, item.name, item.payload, publish=item.publish
                )
        for start in range(0, len(values), _VALUES_PER_CALL):
            chunk = values[start : start + _VALUES_PER_CALL]
            # Payloads go as msgpack strings: the Lua cmsgpack of Redis reads no ``bin`` type.
            packed = _PACK(
                [
                    (item.payload.decode("utf-8", "surrogateescape"), item.feed.ttl, item.publish)
                    for item in chunk
                ]
            )
            pipe.evalsha(self._sha, len(chunk), *(item.name for item in chunk), packed)
            sent += 1
        await pipe.execute()
        return sent
