"""The Finlight listener against the simulated Finlight server and the real RabbitMQ."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import pytest
import structlog
from finlight_client import ApiConfig, FinlightApi, WebSocketOptions
from finlight_client.models import GetArticlesWebSocketParams

from mdp_core.clock import LiveClock
from mdp_core.envelope import decode_news_batch
from mdp_core.settings import Secret, load
from mdp_core.telemetry import Metrics
from mdp_news_listener import FinlightListener, NewsListenerSettings, StreamOutcome
from mdp_queues import AmqpConsumer, AmqpPublisher, ReceivedBatch, Topology
from mdp_sim.scenario import ScenarioConfig
from mdp_sim.server import SimConfig, SimServers

_links = itertools.count(1)


async def eventually(predicate: Callable[[], bool], within: float = 15.0) -> None:
    """Wait until ``predicate()`` holds, failing after ``within`` seconds.

    The listeners expose state, not change notifications, so the state is re-checked every
    10 ms; the deadline, not the poll interval, bounds the test.
    """
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - polls state that has no change event
            await asyncio.sleep(0.01)


def article(title: str) -> dict[str, object]:
    return {
        "link": f"https://news.example.com/{next(_links)}",
        "title": title,
        "publishDate": "2026-11-23T15:00:00Z",
        "source": "news.example.com",
        "language": "en",
        "summary": "Something happened.",
        "sentiment": "positive",
        "confidence": 0.9,
        "companies": [{"companyId": 1, "name": "Zeta Corp", "ticker": "ZZTEST"}],
    }


@pytest.fixture
async def sim() -> AsyncIterator[SimServers]:
    config = SimConfig(speed=1.0, scenario=ScenarioConfig(symbols=5, news_per_hour=0.0))
    async with SimServers(config) as servers:
        yield servers


@pytest.fixture
async def queues(
    amqp_url: str, mdq_prefix: str
) -> AsyncIterator[tuple[AmqpPublisher, AmqpConsumer]]:
    topology = Topology(prefix=mdq_prefix)
    publisher = AmqpPublisher(amqp_url, topology)
    consumer = AmqpConsumer(amqp_url, topology)
    await publisher.start()
    await consumer.start()
    yield publisher, consumer
    await consumer.close()
    await publisher.close()


def settings_for(sim: SimServers, **overrides: Any) -> NewsListenerSettings:
    values: dict[str, Any] = {
        "api_key": Secret(sim.finlight_api_key),
        "wss_url": sim.finlight_wss_url,
        "base_url": sim.finlight_base_url,
        "backoff_initial_seconds": 0.05,
        "blocked_backoff_seconds": 0.3,
        "preempted_backoff_seconds": 0.3,
        "heartbeat_enabled": False,
    }
    values.update(overrides)
    return load(NewsListenerSettings, {}, **values)


@contextlib.asynccontextmanager
async def running(
    settings: NewsListenerSettings, publisher: AmqpPublisher
) -> AsyncIterator[FinlightListener]:
    listener = FinlightListener(settings, publisher, LiveClock(), Metrics("news_listener"))
    stop = asyncio.Event()
    task = asyncio.create_task(listener.run(stop))
    try:
        yield listener
    finally:
        stop.set()
        async with asyncio.timeout(10):
            await task


async def next_titles(consumer: AmqpConsumer, topology: Topology) -> list[str]:
    async with asyncio.timeout(10):
        batch: ReceivedBatch = await anext(
            consumer.consume_batches(topology.news, max_wait_seconds=0)
        )
    await batch.ack()
    titles: list[str] = []
    for message in batch.messages:
        decoded = decode_news_batch(message.body)
        assert decoded.errors == []
        titles.extend(a.title for a in decoded.articles)
    return titles


async def deliver(sim: SimServers, listener: FinlightListener, title: str) -> None:
    await eventually(lambda: listener.streaming)
    before = listener.metrics_snapshot()["counters"]["articles_out"]["total"]
    sim.finlight.publish([article(title)])
    await eventually(
        lambda: listener.metrics_snapshot()["counters"]["articles_out"]["total"] > before
    )


async def test_articles_arrive_intact_in_the_news_queue(
    sim: SimServers, queues: tuple[AmqpPublisher, AmqpConsumer]
) -> None:
    publisher, consumer = queues
    async with running(settings_for(sim), publisher) as listener:
        sent = article("Zeta beats estimates")
        await eventually(lambda: listener.streaming)
        sim.finlight.publish([sent])
        async with asyncio.timeout(10):
            batch = await anext(
                consumer.consume_batches(publisher.topology.news, max_wait_seconds=0)
            )
        [message] = batch.messages
        assert message.envelope.kind == "news"
        assert message.envelope.source == "finlight"
        received = msgspec.json.decode(message.envelope.events[0])
        assert received["link"] == sent["link"]
        assert received["title"] == sent["title"]
        assert received["companies"][0]["ticker"] == "ZZTEST"
        [decoded] = decode_news_batch(message.body).articles
        assert decoded.companies[0].ticker == "ZZTEST"
        await batch.ack()


async def test_a_1008_close_stops_the_client_and_we_restart_it(
    sim: SimServers, queues: tuple[AmqpPublisher, AmqpConsumer]
) -> None:
    publisher, consumer = queues
    async with running(settings_for(sim), publisher) as listener:
        await deliver(sim, listener, "before")
        with structlog.testing.capture_logs() as logs:
            assert await sim.finlight.close(1008) == 1
            await eventually(lambda: listener.runs >= 2 and listener.streaming)
        assert listener.last_outcome is StreamOutcome.BLOCKED
        closes = [e for e in logs if e["event"] == "finlight_policy_close"]
        assert [(e["log_level"], e["code"]) for e in closes] == [("error", 1008)], logs
        await deliver(sim, listener, "after")
    titles = await next_titles(consumer, publisher.topology)
    titles += await next_titles(consumer, publisher.topology) if len(titles) < 2 else []
    assert titles == ["before", "after"]


async def test_a_preempted_stream_is_taken_back_after_a_backoff(
    sim: SimServers, queues: tuple[AmqpPublisher, AmqpConsumer]
) -> None:
    publisher, _ = queues
    async with running(settings_for(sim), publisher) as listener:
        await eventually(lambda: listener.streaming)
        intruder = FinlightApi(
            ApiConfig(
                api_key=sim.finlight_api_key,
                wss_url=sim.finlight_wss_url,
                base_url=sim.finlight_base_url,
            ),
            websocket_options=WebSocketOptions(takeover=True),
        )
        other = asyncio.create_task(
            intruder.websocket.connect(GetArticlesWebSocketParams(language="en"), lambda _: None)
        )
        try:
            await eventually(lambda: listener.last_outcome is StreamOutcome.PREEMPTED)
            # we take it back (takeover) once the backoff is over: the intruder gives up
            await eventually(lambda: listener.streaming and other.done())
        finally:
            intruder.websocket.stop()
            other.cancel()
            await asyncio.gather(other, return_exceptions=True)
        await deliver(sim, listener, "mine again")


async def test_articles_the_client_rejects_do_not_stop_the_stream(
    sim: SimServers, queues: tuple[AmqpPublisher, AmqpConsumer]
) -> None:
    publisher, _ = queues
    async with running(settings_for(sim), publisher) as listener:
        await eventually(lambda: listener.streaming)
        sim.faults.finlight.invalid_articles = True
        sim.finlight.publish([article("no title will be sent")])
        await sim.finlight.watch.wait_for(lambda: sim.finlight.metrics.articles_sent >= 1)
        sim.faults.finlight.invalid_articles = False
        await deliver(sim, listener, "valid")
        assert listener.runs == 1
        counters = listener.metrics_snapshot()["counters"]
        assert counters["articles_out"]["total"] == 1
