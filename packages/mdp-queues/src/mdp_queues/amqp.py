"""RabbitMQ transport (aio-pika): the listeners' publisher and the processors' consumer.

Delivery contract: **at most once** for market data. The publisher sends without publisher
confirms by default (a confirm costs a round trip and the data is worthless in 5 s anyway), never
blocks its caller, and drops the oldest waiting batches when the broker is slow or away, counting
every drop. With confirms, batches go out ``mandatory``: one the broker cannot route (its queue
went with a lost cluster node and nobody has re-declared it yet) comes back, is counted
``unroutable`` and makes the publisher re-declare that queue (aiormq hands returned messages
back only on a confirming channel; without confirms the broker drops them silently, and the
queue comes back when its consumer re-declares it). The consumer acks after the application
handled a message, drops (and acks) stale and poison messages, and never requeues, so one bad
message cannot loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncGenerator, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)

from mdp_core.cancellation import cancel_until_done
from mdp_core.clock import NS_PER_SECOND, Clock, LiveClock
from mdp_core.errors import MdpError
from mdp_core.logging import get_logger
from mdp_queues._admission import Admission
from mdp_queues._messages import (
    ConsumerStats,
    DropReason,
    OutboxStats,
    OutgoingBatch,
    Received,
    ReceivedBatch,
)
from mdp_queues._protocols import Handler
from mdp_queues.nodes import broker_urls, connect_any
from mdp_queues.outbox import Outbox
from mdp_queues.topology import QueueSpec, Topology

__all__ = [
    "AmqpConsumer",
    "AmqpPublisher",
    "ConsumerLost",
    "MismatchPolicy",
    "TopologyMismatch",
    "declare_topology",
]

_log = get_logger("mdp_queues.amqp")

MismatchPolicy = Literal["fail", "recreate"]
"""What to do when a queue exists with other arguments: stop with an error, or delete and
re-declare it (its messages are lost; for market data that is a few seconds of ticks)."""

_CONNECTION_ERRORS = (OSError, aiormq.exceptions.AMQPError, asyncio.TimeoutError)
_INEQUIVALENT = re.compile(r"inequivalent arg '([^']+)'")


class TopologyMismatch(MdpError):
    """A queue already exists with arguments that differ from this topology's.

    Attributes:
        queue: the queue name.
        argument: the differing argument as the broker named it (``x-message-ttl``), if known.
        expected: the arguments this side declares.
        detail: the broker's explanation.
    """

    def __init__(
        self, queue: str, argument: str | None, expected: dict[str, int | str], detail: str
    ) -> None:
        self.queue = queue
        self.argument = argument
        self.expected = expected
        self.detail = detail
        what = f"argument {argument!r}" if argument else "its arguments"
        super().__init__(
            f"queue {queue!r} exists with a different {what} than this topology declares "
            f"({expected}); broker said: {detail}. Make both sides use the same settings, or "
            f"start one side with on_mismatch='recreate' (MDP_MDQ_ON_MISMATCH=recreate) to "
            f"delete and re-declare the queue."
        )


async def declare_topology(
    connection: aio_pika.abc.AbstractConnection,
    topology: Topology,
    *,
    queues: Sequence[QueueSpec] | None = None,
    on_mismatch: MismatchPolicy = "fail",
) -> None:
    """Declare the queues of ``topology`` (idempotent; safe from any number of processes).

    Each queue is declared on a short-lived channel, because a failed declaration closes the
    channel it was made on.

    Raises:
        TopologyMismatch: a queue exists with other arguments and ``on_mismatch`` is ``fail``.
    """
    for spec in queues if queues is not None else topology.queues:
        try:
            await _declare(connection, spec)
        except aiormq.exceptions.ChannelPreconditionFailed as exc:
            detail = str(exc)
            match = _INEQUIVALENT.search(detail)
            argument = match.group(1) if match else None
            if on_mismatch != "recreate":
                raise TopologyMismatch(spec.name, argument, spec.arguments, detail) from None
            _log.warning(
                "queue_redeclared",
                queue=spec.name,
                argument=argument or "argument",
                hint="the queue exists with different arguments; deleted and declared again",
            )
            channel = await connection.channel()
            try:
                await channel.queue_delete(spec.name)
            finally:
                await channel.close()
            await _declare(connection, spec)


async def _declare(connection: aio_pika.abc.AbstractConnection, spec: QueueSpec) -> None:
    channel = await connection.channel()
    try:
        await channel.declare_queue(spec.name, durable=spec.durable, arguments=_arguments(spec))
    finally:
        if not channel.is_closed:
            await channel.close()


def _arguments(spec: QueueSpec) -> dict[str, Any]:
    # aio-pika wants its invariant FieldTable; the values are plain ints and strings.
    return {name: value for name, value in spec.arguments.items()}


class AmqpPublisher:
    """Publishes batches to RabbitMQ from a background task fed by a drop-oldest outbox.

    Args:
        url: the broker URL (``amqp://user:pass@host:5672/vhost``), or the URLs of a cluster's
            nodes (a sequence or comma-separated): connections go to the first that answers
            and, when a node is lost, to the next (:mod:`mdp_queues.nodes`).
        topology: the queues to declare and publish to.
        clock: source of "now" (expiry, timestamps).
        confirms: wait for publisher confirms (at-least-once to the broker; slower).
        confirm_timeout: seconds a publish waits for its confirm. Past it the batch is counted
            ``publish_failed`` and the next one goes out: a confirm the broker never sends (a
            stalled node, or a message routed to a queue whose node died at that moment) must
            not hold every later batch back for good.
        outbox_messages: batches that may wait for the broker.
        outbox_bytes: body bytes that may wait for the broker.
        max_age_seconds: batches older than this are dropped instead of sent; None uses the
            queue TTL (the broker would expire them at once anyway).
        reconnect_interval: seconds between reconnection attempts.
        on_mismatch: policy when a queue exists with other arguments.
        app_id: the AMQP ``app_id`` property (who published).
    """

    def __init__(
        self,
        url: str | Sequence[str],
        topology: Topology,
        *,
        clock: Clock | None = None,
        confirms: bool = False,
        confirm_timeout: float = 5.0,
        outbox_messages: int = 10_000,
        outbox_bytes: int = 64 * 1024 * 1024,
        max_age_seconds: float | None = None,
        reconnect_interval: float = 1.0,
        on_mismatch: MismatchPolicy = "fail",
        app_id: str = "mdp",
    ) -> None:
        self._urls = broker_urls(url)
        self._topology = topology
        self._clock = clock or LiveClock()
        self._confirms = confirms
        self._confirm_timeout = confirm_timeout
        self._max_age_seconds = max_age_seconds
        self._reconnect_interval = reconnect_interval
        self._on_mismatch: MismatchPolicy = on_mismatch
        self._app_id = app_id
        self._stats = OutboxStats()
        self.outbox = Outbox(
            max_messages=outbox_messages,
            max_bytes=outbox_bytes,
            clock=self._clock,
            stats=self._stats,
        )
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None
        self._up = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._failure: BaseException | None = None
        self._redeclaring: dict[str, asyncio.Task[None]] = {}

    @property
    def topology(self) -> Topology:
        """The queues this publisher sends to."""
        return self._topology

    @property
    def connected(self) -> bool:
        """Whether the broker connection and channel are up."""
        return self._up.is_set()

    @property
    def stats(self) -> OutboxStats:
        """Published and dropped counters."""
        return self._stats

    def publish(self, batch: OutgoingBatch) -> None:
        """Queue a batch; returns at once. See :class:`~mdp_queues.outbox.Outbox` for drops."""
        self.outbox.put(batch)

    async def start(self, first_connect_timeout: float = 5.0) -> None:
        """Start connecting and publishing in the background.

        Waits up to ``first_connect_timeout`` for the first connection so that a topology
        mismatch fails the caller at once; a broker that is merely down does not fail start:
        the publisher keeps trying (and dropping, counted) until it comes up.

        Raises:
            TopologyMismatch: the broker has the queues with other arguments.
        """
        if self._task is not None:
            return
        self._task = asyncio.create_task(self._run(), name="mdq-publisher")
        self._task.add_done_callback(self._task_done)
        up = asyncio.create_task(self._up.wait())
        try:
            await asyncio.wait(
                {self._task, up}, timeout=first_connect_timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            up.cancel()
        if self._task.done() and not self._task.cancelled():
            exc = self._task.exception()
            if exc is not None:
                raise exc

    async def wait_connected(self) -> None:
        """Return once the broker is reachable (wrap in ``asyncio.timeout`` to bound it)."""
        await self._up.wait()

    async def close(self) -> None:
        """Stop the publisher task and close the connection; waiting batches are dropped."""
        self._closing = True
        if self._task is not None:
            # Until it ends: aiormq bounds its calls with wait_for, which can lose a single
            # cancel on Python 3.11. A failure was already reported by start() or _task_done.
            await cancel_until_done(self._task)
            self._task = None
        self.outbox.drop_all(DropReason.CLOSED)
        self._mark(up=False)
        if self._connection is not None:
            with contextlib.suppress(*_CONNECTION_ERRORS, RuntimeError):
                await self._connection.close()
            self._connection = None

    @property
    def failure(self) -> BaseException | None:
        """Why the publisher stopped for good (e.g. :class:`TopologyMismatch`), if it did."""
        return self._failure

    # ---------------------------------------------------------------- background

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._failure = exc
            self._mark(up=False)
            _log.critical("publisher_stopped_for_good", error=str(exc))

    def _mark(self, *, up: bool) -> None:
        if up:
            self._up.set()
        else:
            self._up.clear()
        self.outbox.downstream_up = up

    async def _connect(self) -> None:
        while True:
            try:
                connection = await connect_any(
                    self._urls, reconnect_interval=self._reconnect_interval
                )
            except _CONNECTION_ERRORS as exc:
                _log.warning(
                    "broker_unreachable", error=str(exc), retry_seconds=self._reconnect_interval
                )
                await self._clock.sleep(self._reconnect_interval)
                continue
            break
        self._connection = connection
        try:
            await declare_topology(connection, self._topology, on_mismatch=self._on_mismatch)
            channel = await connection.channel(publisher_confirms=self._confirms)
        except BaseException:
            with contextlib.suppress(*_CONNECTION_ERRORS, RuntimeError):
                await connection.close()
            raise
        self._channel = channel
        connection.close_callbacks.add(self._on_connection_lost)
        connection.reconnect_callbacks.add(self._on_reconnected)
        self._mark(up=True)
        _log.info("broker_connected")

    def _on_connection_lost(self, *_: object) -> None:
        if self._closing:
            return
        if self._up.is_set():
            _log.error(
                "broker_connection_lost", hint="dropping the oldest batches until it returns"
            )
        self._mark(up=False)

    async def _on_reconnected(self, *_: object) -> None:
        self._stats.reconnects += 1
        if self._connection is not None:
            try:
                await declare_topology(
                    self._connection, self._topology, on_mismatch=self._on_mismatch
                )
            except TopologyMismatch:
                _log.exception("broker_queues_mismatch_after_reconnect")
                return
            except _CONNECTION_ERRORS as exc:
                _log.warning("topology_redeclare_failed", error=str(exc))
                return
        _log.warning("broker_connection_restored", reconnects=self._stats.reconnects)
        self._mark(up=True)

    def _returned(self, batch: OutgoingBatch) -> None:
        """Count a batch the broker could not route, and re-declare its queue (once at a time)."""
        self._stats.count_dropped(batch, DropReason.UNROUTABLE)
        spec = batch.queue
        connection = self._connection
        if connection is None or spec.name in self._redeclaring:
            return
        task = asyncio.create_task(self._redeclare(connection, spec))
        self._redeclaring[spec.name] = task
        task.add_done_callback(lambda _: self._redeclaring.pop(spec.name, None))

    async def _redeclare(self, connection: AbstractRobustConnection, spec: QueueSpec) -> None:
        try:
            await declare_topology(
                connection, self._topology, queues=[spec], on_mismatch=self._on_mismatch
            )
        except (*_CONNECTION_ERRORS, RuntimeError, TopologyMismatch) as exc:
            _log.warning("unroutable_queue_redeclare_failed", queue=spec.name, error=str(exc))
        else:
            _log.warning("unroutable_queue_redeclared", queue=spec.name)

    async def _run(self) -> None:
        await self._connect()
        outbox = self.outbox
        while True:
            await outbox.wait()
            await self._up.wait()
            channel = self._channel
            assert channel is not None
            exchange = channel.default_exchange
            while self._up.is_set():
                batch = outbox.pop()
                if batch is None:
                    break
                if self._expired(batch):
                    self._stats.count_dropped(batch, DropReason.EXPIRED)
                    continue
                try:
                    confirmation = await exchange.publish(
                        self._message(batch),
                        routing_key=batch.queue.name,
                        mandatory=self._confirms,
                        timeout=self._confirm_timeout if self._confirms else None,
                    )
                except TimeoutError:
                    # The broker may still take it (a late confirm is ignored): counted lost,
                    # which overstates the loss rather than hiding one.
                    self._stats.count_dropped(batch, DropReason.PUBLISH_FAILED)
                    _log.warning(
                        "publish_unconfirmed",
                        queue=batch.queue.name,
                        timeout_seconds=self._confirm_timeout,
                    )
                    continue
                except (*_CONNECTION_ERRORS, RuntimeError) as exc:
                    self._stats.count_dropped(batch, DropReason.PUBLISH_FAILED)
                    _log.warning("publish_failed", queue=batch.queue.name, error=str(exc))
                    if self._connection_closed():
                        self._mark(up=False)  # the reconnect callback marks us up again
                    else:
                        await self._clock.sleep(min(0.1, self._reconnect_interval))
                    break
                if isinstance(confirmation, aiormq.abc.DeliveredMessage):
                    self._returned(batch)  # the broker sent it back: no queue of that name
                    continue
                self._stats.count_published(batch)

    def _connection_closed(self) -> bool:
        connection = self._connection
        return connection is None or connection.is_closed or not connection.connected.is_set()

    def _expired(self, batch: OutgoingBatch) -> bool:
        limit = self._max_age_seconds
        if limit is None:
            limit = batch.queue.ttl_seconds
        return self._clock.now_ns() - batch.received_ns > limit * NS_PER_SECOND

    def _message(self, batch: OutgoingBatch) -> aio_pika.Message:
        return aio_pika.Message(
            batch.body,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.NOT_PERSISTENT,
            message_id=batch.batch_id,
            timestamp=datetime.fromtimestamp(batch.received_ns / NS_PER_SECOND, UTC),
            type=batch.queue.kind,
            app_id=self._app_id,
            headers=dict(batch.headers) if batch.headers else None,
        )


class ConsumerLost(ConnectionError):
    """The broker stopped delivering to a consumer and nothing brought it back.

    Raised by :meth:`AmqpConsumer.consume_batches` when its consumer tag has been missing
    from its open channel at two checks in a row: the caller consumes the queue again, which
    declares it anew (on a surviving node, if its own went down) and subscribes afresh.
    """

    def __init__(self, queue: str) -> None:
        super().__init__(f"the broker no longer delivers {queue!r} to this consumer")
        self.queue = queue


class AmqpConsumer:
    """Consumes batches from RabbitMQ queues with manual acks and a freshness gate.

    Args:
        url: the broker URL, or the URLs of a cluster's nodes (see :class:`AmqpPublisher`).
            Consumers follow the connection to whichever node answers; a queue lost with its
            node is re-declared on the consumer's node and consumed again (aio-pika's robust
            channel, on the broker's consumer cancel).
        topology: the queues to declare and consume from.
        clock: source of "now" for the freshness check.
        prefetch: unacked messages the broker may push ahead, per queue consumed (each has a
            channel of its own, so one ack can settle a run of its messages).
        max_age_seconds: freshness limit; None uses each queue's TTL.
        reconnect_interval: seconds between reconnection attempts.
        on_mismatch: policy when a queue exists with other arguments.
        check_seconds: while a queue brings nothing for this long, check that the channel
            still delivers to its consumer (see :meth:`consume_batches`).
    """

    def __init__(
        self,
        url: str | Sequence[str],
        topology: Topology,
        *,
        clock: Clock | None = None,
        prefetch: int = 100,
        max_age_seconds: float | None = None,
        reconnect_interval: float = 1.0,
        on_mismatch: MismatchPolicy = "fail",
        check_seconds: float = 2.0,
    ) -> None:
        if check_seconds <= 0:
            msg = f"check_seconds must be > 0, was {check_seconds!r}"
            raise ValueError(msg)
        self._check_seconds = check_seconds
        self._urls = broker_urls(url)
        self._topology = topology
        self._clock = clock or LiveClock()
        self._prefetch = prefetch
        self._reconnect_interval = reconnect_interval
        self._on_mismatch: MismatchPolicy = on_mismatch
        self._stats = ConsumerStats()
        self._admission = Admission(self._clock, self._stats, max_age_seconds)
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None
        self._queue_channels: dict[str, AbstractRobustChannel] = {}

    @property
    def topology(self) -> Topology:
        """The queues this consumer reads from."""
        return self._topology

    @property
    def connected(self) -> bool:
        """Whether the broker connection is up."""
        connection = self._connection
        return connection is not None and connection.connected.is_set()

    @property
    def stats(self) -> ConsumerStats:
        """Delivered, dropped and failed counters."""
        return self._stats

    async def start(self) -> None:
        """Connect, declare the topology and set the prefetch.

        Raises:
            TopologyMismatch: the broker has the queues with other arguments.
            ConnectionError: the broker is unreachable (the caller's supervisor retries).
        """
        connection = await connect_any(self._urls, reconnect_interval=self._reconnect_interval)
        try:
            await declare_topology(connection, self._topology, on_mismatch=self._on_mismatch)
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=self._prefetch)
        except BaseException:
            await connection.close()
            raise
        self._connection = connection
        self._channel = channel

    async def close(self) -> None:
        """Close the connection; unacked messages return to the broker."""
        if self._connection is not None:
            with contextlib.suppress(*_CONNECTION_ERRORS, RuntimeError):
                await self._connection.close()
            self._connection = None
            self._channel = None
            self._queue_channels.clear()

    async def consume(self, queue: QueueSpec, handler: Handler) -> None:
        """Hand each admitted message to ``handler``; ack when it returns, reject if it raises."""
        async for batch in self.consume_batches(queue, max_messages=1, max_wait_seconds=0.0):
            message = batch.messages[0]
            try:
                await handler(message)
            except Exception:
                self._stats.handler_errors += 1
                _log.exception(
                    "handler_failed_message_dropped",
                    batch=message.envelope.batch,
                    queue=queue.name,
                )
                await batch.reject()
            else:
                await batch.ack()

    async def consume_batches(
        self, queue: QueueSpec, *, max_messages: int = 100, max_wait_seconds: float = 0.05
    ) -> AsyncGenerator[ReceivedBatch, None]:
        """Yield admitted messages in batches; see :class:`~mdp_queues.Consumer`.

        Each queue is consumed on a channel of its own, kept open after consumption ends (its
        unacked messages must be acked on it by a later flush), so the delivery tags of a
        channel are one queue's messages in delivery order: settling a batch acks its last
        message with ``multiple``, one frame for the lot.

        A consumer the broker cancels (its queue went with a cluster node, or was deleted) is
        normally subscribed again by aio-pika's robust channel within a second. When that
        does not happen, nothing would ever arrive again while the connection looks healthy,
        so while the queue is quiet the channel is checked every ``check_seconds``; a
        consumer missing from its open channel at two checks in a row is counted
        (``consumers_lost``) and ends the generator with :class:`ConsumerLost`.

        Raises:
            ConsumerLost: the broker stopped delivering to this consumer for good.
        """
        channel = await self._channel_for(queue)
        inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        amqp_queue = await channel.declare_queue(
            queue.name, durable=queue.durable, arguments=_arguments(queue)
        )
        tag = await amqp_queue.consume(inbox.put, no_ack=False)
        loop = asyncio.get_running_loop()
        waited = False
        try:
            while True:
                # Kept until a batch is yielded: deliveries that were all dropped as expired
                # leave the wait in force.
                waited = waited or inbox.empty()
                first = await self._next(queue, channel, tag, inbox)
                incoming = [first]
                deadline = loop.time() + max_wait_seconds
                while len(incoming) < max_messages:
                    if not inbox.empty():
                        incoming.append(inbox.get_nowait())
                        continue
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        async with asyncio.timeout(remaining):
                            incoming.append(await inbox.get())
                    except TimeoutError:
                        break
                batch = await self._admit(queue, incoming, waited=waited)
                if batch is not None:
                    yield batch
                    waited = False
        finally:
            # Shielded: a stop that cancels again (a first cancel can be lost on Python 3.11)
            # ends this generator at once, but never cuts the hand-back short, which would
            # leave the leftovers unacked on a channel that stays open.
            release = asyncio.ensure_future(_release(amqp_queue, tag, inbox))
            await asyncio.shield(release)

    async def _next(
        self,
        queue: QueueSpec,
        channel: AbstractRobustChannel,
        tag: str,
        inbox: asyncio.Queue[AbstractIncomingMessage],
    ) -> AbstractIncomingMessage:
        """The next delivery; while none comes, check that one still can (see above)."""
        if not inbox.empty():
            return inbox.get_nowait()
        missing = 0
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._check_seconds):
                    return await inbox.get()
            if await _delivers_to(channel, tag):
                missing = 0
                continue
            missing += 1
            if missing >= _CHECKS_BEFORE_LOST:
                self._stats.consumers_lost += 1
                _log.warning("consumer_lost", queue=queue.name, seconds=self._check_seconds)
                raise ConsumerLost(queue.name)

    async def _channel_for(self, queue: QueueSpec) -> AbstractRobustChannel:
        connection = self._connection
        if connection is None or self._channel is None:
            msg = "call start() before consuming"
            raise RuntimeError(msg)
        channel = self._queue_channels.get(queue.name)
        if channel is None or channel.is_closed:
            opened: AbstractRobustChannel = await connection.channel()
            await opened.set_qos(prefetch_count=self._prefetch)
            self._queue_channels[queue.name] = channel = opened
        return channel

    async def _admit(
        self, queue: QueueSpec, incoming: list[AbstractIncomingMessage], *, waited: bool
    ) -> ReceivedBatch | None:
        admitted: list[Received] = []
        tokens: list[AbstractIncomingMessage] = []
        dropped: list[AbstractIncomingMessage] = []
        for message in incoming:
            received = self._admission.admit(
                queue,
                message.body,
                redelivered=bool(message.redelivered),
                headers=message.headers,
            )
            if received is None:
                dropped.append(message)
            else:
                admitted.append(received)
                tokens.append(message)
        if dropped:
            await _settle(dropped, ok=True)
        if not admitted:
            return None
        return ReceivedBatch(admitted, tokens, _settle_tokens, waited=waited)


_CHECKS_BEFORE_LOST = 2
"""Checks in a row that must miss a consumer: aio-pika's own recovery gets one interval."""


async def _delivers_to(channel: AbstractRobustChannel, tag: str) -> bool:
    """Whether ``channel`` still delivers to consumer ``tag`` (True while it cannot tell).

    A closed or reconnecting channel is aio-pika's to restore, with its consumers.
    """
    if channel.is_closed:
        return True
    try:
        async with asyncio.timeout(1.0):
            underlay = await channel.get_underlay_channel()
    except (TimeoutError, *_CONNECTION_ERRORS, RuntimeError):
        return True
    if underlay.is_closed or not isinstance(underlay, aiormq.Channel):
        return True
    return tag in underlay.consumers


async def _release(
    amqp_queue: AbstractQueue, tag: str, inbox: asyncio.Queue[AbstractIncomingMessage]
) -> None:
    """End a consumer: stop deliveries, then give back what was delivered but not handed out.

    Back to the queue, in order, for whoever consumes it next (a partition handed to another
    processor loses nothing).
    """
    with contextlib.suppress(*_CONNECTION_ERRORS, RuntimeError):
        await amqp_queue.cancel(tag)
    leftovers: list[AbstractIncomingMessage] = []
    while not inbox.empty():
        leftovers.append(inbox.get_nowait())
    with contextlib.suppress(*_CONNECTION_ERRORS, RuntimeError):
        await _requeue(leftovers)


async def _requeue(messages: Sequence[AbstractIncomingMessage]) -> None:
    """Give messages back to their queue (skipped when their channel died: already back)."""
    for message in messages:
        if not message.channel.is_closed:
            await message.nack(requeue=True)


async def _settle_tokens(tokens: Sequence[object], ok: bool) -> None:
    messages = [t for t in tokens if isinstance(t, AbstractIncomingMessage)]
    if ok:
        await _ack_through(messages)
    else:
        await _settle(messages, ok=False)


async def _ack_through(messages: Sequence[AbstractIncomingMessage]) -> None:
    """Ack ``messages`` with one ``multiple`` ack per channel, on the highest delivery tag.

    Safe because a consumer's channel carries one queue, consumed in order: every unsettled
    message below the highest tag of a batch is in that batch (later ones are still waiting
    in the consumer's inbox, above it). A channel that died is skipped (see :func:`_settle`).
    """
    last: dict[int, AbstractIncomingMessage] = {}
    for message in messages:
        key = id(message.channel)
        kept = last.get(key)
        if kept is None or (message.delivery_tag or 0) > (kept.delivery_tag or 0):
            last[key] = message
    for message in last.values():
        if message.channel.is_closed:
            continue
        try:
            await message.ack(multiple=True)
        except (*_CONNECTION_ERRORS, RuntimeError) as exc:
            _log.warning("message_settle_failed", error=str(exc))


async def _settle(messages: Sequence[AbstractIncomingMessage], *, ok: bool) -> None:
    """Ack or reject (without requeue); a message from a channel that died is skipped.

    After a reconnect the broker redelivers what was unacked on the old channel, and acking
    on a new channel with an old delivery tag would close it, so stale tags are ignored.
    """
    for message in messages:
        if message.channel.is_closed:
            continue
        try:
            if ok:
                await message.ack()
            else:
                await message.reject(requeue=False)
        except (*_CONNECTION_ERRORS, RuntimeError) as exc:
            _log.warning("message_settle_failed", error=str(exc))
