"""RabbitMQ's own count of messages that expired unread: the MDQ losses no component sees.

A message that waits in an MDQ queue past its 5 s TTL is dropped by the broker before any
processor takes it, so neither the listener (it published) nor the processors (they never
received it) can count it. RabbitMQ does (3.10+): its global counter
``messages_dead_lettered_expired_total`` for classic queues without a dead-letter exchange,
which the ``rabbitmq_prometheus`` plugin exports as
``rabbitmq_global_messages_dead_lettered_expired_total{dead_letter_strategy="disabled"}``
(the ``MdpBrokerExpiringEvents`` alert watches it in deployment). The bench reads it before
and after a run with ``rabbitmqctl eval`` when the broker is this machine's default node, so
an incomplete drain can say how many batches the broker dropped. The counter is broker-wide:
another client's expiring messages count too.

Batches differ in size, so a count of messages cannot tell the drain how many *events* never
reached a processor. :class:`ExpiryCounter` can: for the run, a policy gives the run's
queues (and only them) a dead-letter exchange, and the bench reads what expires there and
counts its events. Dead-lettered, expiring messages leave the counter above (it counts only
queues without one).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
from typing import Any, Final
from urllib.parse import unquote, urlsplit

import aio_pika
from aio_pika.exceptions import AMQPException

from mdp_core.envelope import decode_header
from mdp_core.errors import EnvelopeError

__all__ = ["ExpiryCounter", "expired_messages"]

#: The counter, read from the map of counters of classic queues without dead-lettering.
_EXPRESSION: Final = (
    "maps:get(messages_dead_lettered_expired_total, maps:get("
    "[{queue_type, rabbit_classic_queue}, {dead_letter_strategy, disabled}], "
    "rabbit_global_counters:overview()))."
)
_LOCAL_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})


def _local_ctl(amqp_url: str) -> str | None:
    """``rabbitmqctl`` when the broker is this machine's default node, else None."""
    parts = urlsplit(amqp_url)
    tool = shutil.which("rabbitmqctl")
    if parts.hostname not in _LOCAL_HOSTS or (parts.port or 5672) != 5672 or tool is None:
        return None
    return tool


async def _ctl(tool: str, *args: str, within: float) -> str | None:
    """Run ``rabbitmqctl ARGS``; its output, or None when it failed or took too long."""
    try:
        process = await asyncio.create_subprocess_exec(
            tool,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
    except OSError:
        return None
    try:
        async with asyncio.timeout(within):
            out, _ = await process.communicate()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        return None
    return out.decode(errors="replace").strip() if process.returncode == 0 else None


class ExpiryCounter:
    """Counts the events of the run's MDQ batches that the broker expired unread.

    Args:
        amqp_url: the broker (its virtual host is where the policy goes).
        prefix: the run's queue prefix; the policy matches queues starting with it, no others.

    Attributes:
        active: whether the policy is set and the dead-letter queue read (False: the broker
            is not this machine's default node, or ``rabbitmqctl`` refused).
        messages: expired batches read back.
        events: events in them.
        unreadable: expired messages that were not envelopes (counted, not guessed at).
        problem: why events are not counted, when :attr:`active` is False.
    """

    def __init__(self, amqp_url: str, prefix: str) -> None:
        self._url = amqp_url
        self._prefix = prefix
        self._policy = f"{prefix}expiry"
        self._vhost = unquote(urlsplit(amqp_url).path[1:]) or "/"
        self._tool = _local_ctl(amqp_url)
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self.active = False
        self.messages = 0
        self.events = 0
        self.unreadable = 0
        self.problem = ""
        self._arrived = asyncio.Event()

    async def start(self, *, within: float = 20.0) -> bool:
        """Declare the dead-letter exchange and queue, read it, then set the policy.

        Returns whether events are now counted; when not, :attr:`problem` says why (never an
        error: the figure explains a run, it must not break one).
        """
        if self._tool is None:
            self.problem = "needs rabbitmqctl and the broker on 127.0.0.1:5672"
            return False
        exchange_name = f"{self._prefix}expired"
        try:
            self._connection = await aio_pika.connect_robust(self._url)
            channel = await self._connection.channel()
            exchange = await channel.declare_exchange(
                exchange_name, aio_pika.ExchangeType.FANOUT, durable=False, auto_delete=True
            )
            queue = await channel.declare_queue(exchange_name, exclusive=True, durable=False)
            await queue.bind(exchange)
            await queue.consume(self._count, no_ack=True)
        except (OSError, AMQPException) as exc:
            self.problem = f"the dead-letter queue: {type(exc).__name__}"
            await self.stop()
            return False
        definition = json.dumps({"dead-letter-exchange": exchange_name})
        done = await _ctl(
            self._tool, "set_policy", "--vhost", self._vhost, "--priority", "100",
            "--apply-to", "queues", self._policy, f"^{re.escape(self._prefix)}", definition,
            within=within,
        )  # fmt: skip
        self.active = done is not None
        if not self.active:
            self.problem = "rabbitmqctl set_policy failed"
        return self.active

    async def _count(self, message: Any) -> None:
        self.messages += 1
        try:
            self.events += len(decode_header(message.body).events)
        except EnvelopeError:
            self.unreadable += 1
        self._arrived.set()

    async def read(self, messages: int, *, within: float) -> bool:
        """Wait until ``messages`` expired batches were read back (bounded); whether they were."""
        try:
            async with asyncio.timeout(within):
                while self.messages < messages:
                    self._arrived.clear()
                    await self._arrived.wait()
        except TimeoutError:
            return False
        return True

    async def stop(self, *, within: float = 20.0) -> None:
        """Clear the policy, then close the connection (its queue and exchange go with it)."""
        if self._tool is not None and self.active:
            await _ctl(
                self._tool, "clear_policy", "--vhost", self._vhost, self._policy, within=within
            )
        self.active = False
        if self._connection is not None:
            await self._connection.close()
            self._connection = None


async def expired_messages(amqp_url: str, *, within: float = 20.0) -> int | None:
    """The broker's count of expired, dropped messages; None when it cannot be read here.

    Read only for a broker on this machine's default node (loopback, port 5672) with
    ``rabbitmqctl`` on the PATH; a failure or a slow answer is None, never an error: the
    figure explains a run, it must not break one.
    """
    tool = _local_ctl(amqp_url)
    if tool is None:
        return None
    text = await _ctl(tool, "eval", _EXPRESSION, within=within)
    return int(text) if text is not None and text.isdigit() else None
