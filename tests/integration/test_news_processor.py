"""The news processor against the real RabbitMQ and Redis: articles land in the WDC news feeds."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from redis.asyncio import Redis

from mdp_analyzers.news import FinlightDataAnalyzer
from mdp_cache.widgets import WidgetWriter
from mdp_core.backoff import BackoffPolicy
from mdp_core.clock import LiveClock
from mdp_core.envelope import encode_envelope
from mdp_core.telemetry import Metrics
from mdp_news_processor.processor import NewsProcessor
from mdp_queues import AmqpConsumer, AmqpPublisher, OutgoingBatch, Topology
from mdp_testing.proxy import TcpProxy

from .test_mdq_amqp import cancel_behind_the_library


def _article(n: int, *tickers: str) -> dict[str, Any]:
    return {
        "link": f"https://news.example/{n}",
        "title": f"Story {n}",
        "publishDate": f"2026-11-23T14:{n % 60:02d}:00Z",
        "source": "news.example",
        "language": "en",
        "companies": [
            {"companyId": i, "name": t, "ticker": t, "exchange": "NASDAQ"}
            for i, t in enumerate(tickers)
        ],
    }


def _batch(topology: Topology, batch_id: str, *articles: object) -> OutgoingBatch:
    raws = [msgspec.Raw(json.dumps(a).encode()) for a in articles]
    now = time.time_ns()
    body = encode_envelope(kind="news", source="test", batch=batch_id, received_ns=now, events=raws)
    return OutgoingBatch(topology.news, body, batch_id, now, len(raws))


def _news_processor(consumer: AmqpConsumer, topology: Topology, wdc: Redis) -> NewsProcessor:
    return NewsProcessor(
        consumer, topology.news, WidgetWriter(wdc), FinlightDataAnalyzer(ticker_max_len=2),
        clock=LiveClock(), metrics=Metrics("news-processor-test"), batch_wait_seconds=0.02,
        retry=BackoffPolicy(0.05, 5.0),
    )  # fmt: skip


@pytest.fixture
async def wiring(
    amqp_url: str, redis_db_url: str, mdq_prefix: str
) -> AsyncIterator[tuple[AmqpPublisher, NewsProcessor, Redis, TcpProxy, asyncio.Event]]:
    topology = Topology(prefix=mdq_prefix)
    publisher = AmqpPublisher(amqp_url, topology)
    consumer = AmqpConsumer(amqp_url, topology, prefetch=10)
    await publisher.start()
    await consumer.start()
    proxy = TcpProxy.for_url(redis_db_url)
    await proxy.start()
    wdc = Redis.from_url(proxy.proxied(redis_db_url), socket_timeout=2)
    reader = Redis.from_url(redis_db_url)
    processor = _news_processor(consumer, topology, wdc)
    stop = asyncio.Event()
    task = asyncio.create_task(processor.run(stop))
    try:
        yield publisher, processor, reader, proxy, stop
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
        await consumer.close()
        await publisher.close()
        await proxy.close()
        await wdc.aclose()
        await reader.aclose()


async def _until_articles(processor: NewsProcessor, count: int) -> None:
    async with asyncio.timeout(15):
        await processor.wait_until(lambda: processor.status()["articles_in"] == count)


async def test_articles_reach_the_latest_and_ticker_feeds_with_caps_ttls_and_channels(
    wiring: tuple[AmqpPublisher, NewsProcessor, Redis, TcpProxy, asyncio.Event],
) -> None:
    publisher, processor, redis, _, _ = wiring
    pubsub = redis.pubsub()
    await pubsub.subscribe("news:latest")
    await pubsub.get_message(timeout=2)  # the subscribe confirmation

    publisher.publish(
        _batch(publisher.topology, "fdl:1", _article(1, "ACME"), _article(2, "ACME", "BOLT"))
    )
    publisher.publish(_batch(publisher.topology, "fdl:2", _article(3, "ACME"), _article(1, "ACME")))
    await _until_articles(processor, 4)

    latest = [json.loads(x)["link"] for x in await redis.lrange("news:latest", 0, -1)]
    assert latest == ["https://news.example/3", "https://news.example/2", "https://news.example/1"]
    acme = [json.loads(x)["link"] for x in await redis.lrange("news:ticker:ACME", 0, -1)]
    assert acme == ["https://news.example/3", "https://news.example/2"]  # capped at 2
    assert await redis.llen("news:ticker:BOLT") == 1
    assert 0 < await redis.ttl("news:latest") <= 2 * 86_400
    message = await pubsub.get_message(timeout=5)
    assert message is not None
    assert json.loads(message["data"])["link"] == "https://news.example/1"
    await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
    assert processor.status()["duplicates"] == 1


async def test_a_bad_article_is_counted_and_the_rest_is_published(
    wiring: tuple[AmqpPublisher, NewsProcessor, Redis, TcpProxy, asyncio.Event],
) -> None:
    publisher, processor, redis, _, _ = wiring
    broken = {k: v for k, v in _article(9, "ACME").items() if k != "title"}
    publisher.publish(_batch(publisher.topology, "fdl:9", broken, _article(10, "ACME")))
    await _until_articles(processor, 1)
    assert await redis.llen("news:latest") == 1
    assert processor.status()["articles_bad"] == 1


async def test_news_waits_out_a_redis_outage_and_is_written_afterwards(
    wiring: tuple[AmqpPublisher, NewsProcessor, Redis, TcpProxy, asyncio.Event],
) -> None:
    publisher, processor, redis, proxy, _ = wiring
    await proxy.cut()
    publisher.publish(_batch(publisher.topology, "fdl:20", _article(20, "ACME")))
    async with asyncio.timeout(10):
        await processor.wait_until(lambda: not processor.redis_ok)
    assert processor.batches == 0
    await proxy.restore()
    async with asyncio.timeout(15):
        await processor.wait_until(lambda: processor.batches == 1)
    assert processor.redis_ok
    assert await redis.llen("news:ticker:ACME") == 1
    assert processor.status()["redis_errors"] >= 1


async def test_the_news_processor_reads_on_after_its_consumer_is_lost(
    amqp_url: str, redis_db_url: str, mdq_prefix: str
) -> None:
    topology = Topology(prefix=mdq_prefix)
    publisher = AmqpPublisher(amqp_url, topology)
    consumer = AmqpConsumer(amqp_url, topology, prefetch=10, check_seconds=0.1)
    await publisher.start()
    await consumer.start()
    wdc = Redis.from_url(redis_db_url)
    processor = _news_processor(consumer, topology, wdc)
    stop = asyncio.Event()
    task = asyncio.create_task(processor.run(stop))
    try:
        publisher.publish(_batch(topology, "n1", _article(1, "AB")))
        await _until_articles(processor, 1)
        await cancel_behind_the_library(consumer, topology.news)
        publisher.publish(_batch(topology, "n2", _article(2, "AB")))
        await _until_articles(processor, 2)
        assert consumer.stats.consumers_lost == 1
        assert not task.done()
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await consumer.close()
        await publisher.close()
        await wdc.aclose()
