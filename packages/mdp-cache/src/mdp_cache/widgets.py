"""Typed writers of the widget data cache (WDC).

Every write goes through the shape its :class:`~mdp_cache.keys.Feed` declares, so the snapshot
key and the channel of a feed always agree: a ``value`` feed is ``SET name payload EX ttl``, a
``list`` feed is ``LPUSH`` + ``LTRIM`` to ``max_len`` + ``EXPIRE``; then, when asked, the same
bytes are published on the channel of the same name. A whole flush is one pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from mdp_cache.keys import Feed

__all__ = ["WidgetItem", "WidgetWriter", "queue_widget_write"]


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

    Args:
        redis: The WDC client.
    """

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def write(self, writes: Sequence[WidgetItem]) -> int:
        """Write (and publish) every item in one non-transactional pipeline.

        Returns:
            The number of commands sent.
        """
        if not writes:
            return 0
        pipe = self._redis.pipeline(transaction=False)
        sent = 0
        for item in writes:
            sent += queue_widget_write(
                pipe, item.feed, item.name, item.payload, publish=item.publish
            )
        await pipe.execute()
        return sent
