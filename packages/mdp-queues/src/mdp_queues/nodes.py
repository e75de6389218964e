"""The broker nodes a publisher or consumer may connect to, and failing over between them.

A RabbitMQ cluster is several nodes, each accepting clients; a client connected to a node that
dies must reconnect to another. aio-pika's robust connection reconnects to the one URL it was
given, so :class:`NodeRotation` gives it the next node's URL on every connection attempt
(round robin from the node it lost), and :func:`connect_any` makes the first connection to
the first node that answers, in the order given. The reconnect pacing stays aio-pika's
(``reconnect_interval``), so a shared backoff policy can replace it in one place.

One URL (the single-node setup) behaves exactly as before: every attempt goes to it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import aiormq
from aio_pika import RobustConnection
from aio_pika.connection import make_url

__all__ = ["NodeRotation", "broker_urls", "connect_any"]

_CONNECTION_ERRORS = (OSError, aiormq.exceptions.AMQPError, asyncio.TimeoutError)


def broker_urls(urls: str | Sequence[str]) -> tuple[str, ...]:
    """The node URLs of ``urls``: one URL, a comma-separated list, or a sequence.

    Raises:
        ValueError: no URL, an empty item, or one that is not ``amqp://`` / ``amqps://``.
    """
    items = urls.split(",") if isinstance(urls, str) else list(urls)
    parsed = tuple(item.strip() for item in items)
    if not parsed or any(not item for item in parsed):
        msg = "the broker URL list is empty or has an empty item (a stray comma?)"
        raise ValueError(msg)
    for item in parsed:
        if urlsplit(item).scheme not in {"amqp", "amqps"}:
            msg = f"broker URLs must start with amqp:// or amqps:// (item {len(items)} does not)"
            raise ValueError(msg)
    return parsed


class NodeRotation(RobustConnection):
    """A robust connection that moves to the next node's URL before every attempt.

    The first attempt goes to ``urls[start]``; each later one (a reconnect after a loss, or a
    failed attempt) to the next URL, wrapping around. Channels, queues and consumers are
    restored by aio-pika on whichever node answers.
    """

    def __init__(self, urls: Sequence[str], start: int = 0, **kwargs: Any) -> None:
        self._node_urls = tuple(make_url(url) for url in urls)
        self._next_node = start % len(self._node_urls)
        self.node_index = self._next_node
        """Index in ``urls`` of the node of the current (or last) attempt."""
        self.node_attempts = 0
        super().__init__(self._node_urls[self._next_node], **kwargs)

    async def _RobustConnection__connect_transport(self) -> None:
        # aio-pika's reconnect loop calls its private ``__connect_transport`` for every
        # attempt, and that reads ``self.url``: point it at the next node first. Pinned by
        # tests/integration/test_mdq_cluster.py (a dead first node, then a node lost).
        self.node_index = self._next_node
        self.url = self._node_urls[self._next_node]
        self._next_node = (self._next_node + 1) % len(self._node_urls)
        self.node_attempts += 1
        await super()._RobustConnection__connect_transport()  # type: ignore[misc]


async def connect_any(urls: Sequence[str], *, reconnect_interval: float) -> NodeRotation:
    """Connect to the first node of ``urls`` that answers, trying each once, in order.

    Raises:
        OSError, aiormq.exceptions.AMQPError, TimeoutError: no node answered (the last
            node's error); the caller's retry loop tries again.
    """
    failure: BaseException | None = None
    for start in range(len(urls)):
        connection = NodeRotation(urls, start, reconnect_interval=reconnect_interval)
        try:
            await connection.connect()
        except _CONNECTION_ERRORS as exc:
            failure = exc
            await connection.close()
            continue
        return connection
    assert failure is not None  # urls is never empty (broker_urls)
    raise failure
