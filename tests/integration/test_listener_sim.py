"""The Massive listener against the simulator and the real RabbitMQ, fault by fault."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import pytest
import structlog

from mdp_core.clock import LiveClock
from mdp_core.envelope import decode_event_batch
from mdp_core.settings import Secret, load
from mdp_core.telemetry import Metrics
from mdp_listener import ListenerSettings, MassiveListener, SessionOutcome
from mdp_queues import AmqpConsumer, AmqpPublisher, Topology
from mdp_runtime import AuthError, ExitCode
from mdp_sim.faults import MalformedKind
from mdp_sim.scenario import ScenarioConfig
from mdp_sim.server import SimConfig, SimServers

SYMBOL = "ZZTEST"


async def eventually(predicate: Callable[[], bool], within: float = 10.0) -> None:
    """Wait until ``predicate()`` holds, failing after ``within`` seconds.

    The listeners expose state, not change notifications, so the state is re-checked every
    10 ms; the deadline, not the poll interval, bounds the test.
    """
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - polls state that has no change event
            await asyncio.sleep(0.01)


def settings_for(sim: SimServers, **overrides: Any) -> ListenerSettings:
    values: dict[str, Any] = {
        "api_key": Secret(sim.api_key),
        "feed": sim.massive_feed,
        "secure": False,
        "always_on": True,
        "topics": ("T.*", "Q.*"),
        "backoff_initial_seconds": 0.05,
        "backoff_max_seconds": 0.2,
        "kick_backoff_seconds": 0.3,
        "stale_after_seconds": 5.0,
        "batch_interval_seconds": 0.01,
        "heartbeat_enabled": False,
    }
    values.update(overrides)
    return load(ListenerSettings, {}, **values)


@pytest.fixture
async def sim() -> AsyncIterator[SimServers]:
    config = SimConfig(speed=1.0, scenario=ScenarioConfig(symbols=40, news_per_hour=0.0))
    async with SimServers(config) as servers:
        yield servers


@pytest.fixture
async def publisher(amqp_url: str, mdq_prefix: str) -> AsyncIterator[AmqpPublisher]:
    publisher = AmqpPublisher(amqp_url, Topology(prefix=mdq_prefix))
    await publisher.start()
    yield publisher
    await publisher.close()


class Running:
    """A listener running in the background for the duration of a test."""

    def __init__(self, listener: MassiveListener, metrics: Metrics) -> None:
        self.listener = listener
        self.metrics = metrics
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(listener.run(self.stop))

    def count(self, name: str) -> int:
        return self.metrics.counter(name).total

    async def close(self) -> None:
        self.stop.set()
        async with asyncio.timeout(10):
            with contextlib.suppress(AuthError):
                await self.task


@contextlib.asynccontextmanager
async def running(settings: ListenerSettings, publisher: AmqpPublisher) -> AsyncIterator[Running]:
    metrics = Metrics("listener")
    run = Running(MassiveListener(settings, publisher, LiveClock(), metrics), metrics)
    try:
        yield run
    finally:
        await run.close()


def one_of_each_type() -> list[dict[str, object]]:
    ms = time.time_ns() // 1_000_000
    ns = time.time_ns()
    bar = {
        "sym": SYMBOL,
        "v": 100,
        "av": 1000,
        "op": 10.0,
        "vw": 10.5,
        "o": 10.4,
        "c": 10.5,
        "h": 10.6,
        "l": 10.3,
        "a": 10.45,
        "z": 50,
        "s": ms - 1000,
        "e": ms,
    }
    return [
        {
            "ev": "T",
            "sym": SYMBOL,
            "x": 4,
            "i": "77",
            "z": 3,
            "p": 10.5,
            "s": 100,
            "c": [14],
            "t": ms,
            "q": 1,
        },
        {
            "ev": "Q",
            "sym": SYMBOL,
            "bx": 4,
            "bp": 10.4,
            "bs": 2,
            "ax": 7,
            "ap": 10.6,
            "as": 3,
            "c": 0,
            "i": [604],
            "t": ms,
            "q": 2,
            "z": 3,
        },
        {"ev": "A", **bar},
        {"ev": "AM", **bar},
        {"ev": "LULD", "T": SYMBOL, "h": 11.0, "l": 9.0, "i": [], "z": 3, "t": ms, "q": 3},
        {
            "ev": "NOI",
            "T": SYMBOL,
            "t": ms,
            "at": 930,
            "a": "M",
            "i": 1,
            "x": 4,
            "o": 1000,
            "p": 500,
            "b": 10.5,
        },
        {"ev": "FMV", "fmv": 10.51, "sym": SYMBOL, "t": ns},
        {"ev": "LV", "val": 10.52, "sym": SYMBOL, "t": ns},
    ]


async def test_events_of_every_type_arrive_intact_in_their_own_queue(
    sim: SimServers, publisher: AmqpPublisher, amqp_url: str
) -> None:
    events = one_of_each_type()
    kinds = [str(e["ev"]) for e in events]
    topics = tuple(f"{kind}.{SYMBOL}" for kind in kinds)
    topology = publisher.topology
    consumer = AmqpConsumer(amqp_url, topology)
    await consumer.start()
    try:
        async with running(settings_for(sim, topics=topics), publisher) as run:
            await sim.massive.watch.wait_for(
                lambda: sum(len(s) for s in sim.massive.subscriptions()) == len(topics)
            )
            sim.massive.publish(events, flush=True)
            await eventually(lambda: publisher.stats.total_published_events == len(events))
            assert run.count("events_unknown") == 0
        for event in events:
            queue = topology.for_kind(str(event["ev"]))
            assert queue is not None
            async with asyncio.timeout(10):
                batch = await anext(consumer.consume_batches(queue, max_wait_seconds=0))
            [message] = batch.messages
            assert message.envelope.kind == event["ev"]
            assert message.envelope.source == "massive"
            assert [msgspec.json.decode(raw) for raw in message.envelope.events] == [event]
            decoded = decode_event_batch(message.body)
            assert decoded.errors == []
            assert len(decoded.events) == 1
            await batch.ack()
    finally:
        await consumer.close()


async def test_abnormal_close_1011_reconnects_and_streams_again(
    sim: SimServers, publisher: AmqpPublisher
) -> None:
    async with running(settings_for(sim), publisher) as run:
        await eventually(lambda: run.listener.streaming)
        assert await sim.massive.drop(1011) == 1
        await eventually(lambda: run.listener.sessions >= 2 and run.listener.streaming)
        assert run.listener.last_outcome is SessionOutcome.ERROR
        before = run.count("events_in")
        await eventually(lambda: run.count("events_in") > before)
        assert run.count("reconnects") == 1
        assert run.count("kicks") == 0


@pytest.mark.restart
async def test_a_first_kick_retries_fast_and_a_second_in_a_row_backs_off_loudly(
    sim: SimServers, publisher: AmqpPublisher
) -> None:
    settings = settings_for(
        sim, kick_first_retry_seconds=0.01, kick_backoff_seconds=0.5, backoff_initial_seconds=0.01
    )
    async with running(settings, publisher) as run:
        await eventually(lambda: run.listener.streaming)
        assert await sim.massive.kick() == 1
        await eventually(lambda: run.listener.sessions >= 2 and run.listener.streaming)
        assert run.listener.last_outcome is SessionOutcome.KICKED
        with structlog.testing.capture_logs() as logs:
            assert await sim.massive.kick() == 1
            await eventually(lambda: run.listener.sessions >= 3 and run.listener.streaming)
        assert run.count("kicks") == 2
        # The second kick in a row chose the long backoff (the delay it logs, not a stopwatch).
        loud = [e for e in logs if e["event"] == "kicked_max_connections_again"]
        assert all(e["log_level"] == "error" for e in loud), loud
        assert loud, logs
        assert all(e["seconds"] >= 0.5 for e in loud), loud
        assert loud[0]["in_row"] == 2


async def test_a_switched_feed_that_refuses_the_key_reverts_to_the_last_good_one(
    sim: SimServers, publisher: AmqpPublisher
) -> None:
    other_config = SimConfig(
        speed=1.0, scenario=ScenarioConfig(symbols=5, news_per_hour=0.0), api_key="another-key"
    )
    async with SimServers(other_config) as other:
        allow = (sim.massive_feed, other.massive_feed)
        async with running(settings_for(sim, feed_allow=allow), publisher) as run:
            await eventually(lambda: run.listener.streaming)
            run.listener.set_feed(other.massive_feed, secure=False)
            await eventually(lambda: run.listener.sessions >= 2)
            await eventually(lambda: run.listener.sessions >= 3 and run.listener.streaming)
            assert not run.task.done()  # not dead: the listener went back
            assert run.listener.feed == sim.massive_feed
            with pytest.raises(ValueError, match="not allowed"):
                run.listener.set_feed("127.0.0.1:1", secure=False)  # loopback, but not listed
            assert run.listener.feed == sim.massive_feed


async def test_a_silent_socket_is_noticed_by_the_watchdog(
    sim: SimServers, publisher: AmqpPublisher
) -> None:
    async with running(settings_for(sim, stale_after_seconds=0.4), publisher) as run:
        await eventually(lambda: run.listener.streaming)
        sim.faults.massive.stall = True
        await eventually(lambda: run.count("stale") >= 1)
        await eventually(lambda: run.listener.last_outcome is SessionOutcome.STALE)
        sim.faults.massive.stall = False
        sessions = run.listener.sessions
        await eventually(lambda: run.listener.sessions > sessions and run.listener.streaming)
        before = run.count("events_in")
        await eventually(lambda: run.count("events_in") > before)


async def test_malformed_frames_are_counted_and_the_stream_goes_on(
    sim: SimServers, publisher: AmqpPublisher
) -> None:
    sim.faults.massive.malformed_ratio = 0.5
    sim.faults.massive.malformed_kinds = tuple(MalformedKind)
    async with running(settings_for(sim), publisher) as run:
        await eventually(lambda: run.count("malformed") >= 5)
        before = publisher.stats.total_published_events
        await eventually(lambda: publisher.stats.total_published_events > before)
        assert run.listener.sessions == 1
        assert run.count("reconnects") == 0
    kinds = run.metrics.counter("malformed").snapshot()
    assert any(key.startswith("kind=") for key in kinds)


async def test_nested_frames_are_counted_as_too_deep_and_the_session_goes_on(
    sim: SimServers, publisher: AmqpPublisher
) -> None:
    sim.faults.massive.malformed_ratio = 0.5
    sim.faults.massive.malformed_kinds = (MalformedKind.NESTED,)
    async with running(settings_for(sim), publisher) as run:
        too_deep = run.metrics.counter("malformed")
        await eventually(lambda: too_deep.snapshot().get("kind=too_deep", 0) >= 3)
        before = publisher.stats.total_published_events
        await eventually(lambda: publisher.stats.total_published_events > before)
        assert run.listener.sessions == 1
        assert run.count("reconnects") == 0


async def test_a_refused_key_ends_the_run_with_the_auth_exit_code(
    sim: SimServers, publisher: AmqpPublisher
) -> None:
    settings = settings_for(sim, api_key=Secret("not-the-key"))
    listener = MassiveListener(settings, publisher, LiveClock(), Metrics("listener"))
    with pytest.raises(AuthError) as caught:
        async with asyncio.timeout(10):
            await listener.run(asyncio.Event())
    assert caught.value.code == ExitCode.AUTH
    assert "API key" in caught.value.message
    assert listener.sessions == 1  # no retry loop on a refused key
