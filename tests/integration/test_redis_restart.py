"""The market and news processors through a Redis crash and restart (real RabbitMQ, real Redis).

The shared Redis cannot be restarted under other tests, so this one runs a private
``redis-server`` and kills it (SIGKILL, persistence off: state and scripts are gone), as a
pod restart would. Both processors must pause without acking, retry until the server is back,
reload their scripts, write what they held, and go on: rows, quote records, trades and news
land in the new server with their TTLs and channels, and the leaderboard fills back in as
symbols trade again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec
from redis.asyncio import Redis

from mdp_analyzers.leaderboard import LeaderboardAnalyzer
from mdp_analyzers.news import FinlightDataAnalyzer
from mdp_analyzers.routing import MassiveDataAnalyzer
from mdp_analyzers.top_trades import TopTradesAnalyzer
from mdp_cache.client import close_redis, create_redis
from mdp_cache.keys import (
    FEED_NEWS_TICKER,
    FEED_QUOTE,
    FEED_SCANNER_TOP_VOLUME,
    FEED_TOP_TRADES,
    FEED_TRADE_STATS,
)
from mdp_cache.state import RedisState
from mdp_cache.widgets import WidgetWriter
from mdp_core.backoff import BackoffPolicy
from mdp_core.clock import LiveClock
from mdp_core.envelope import encode_envelope
from mdp_core.events import MarketEvent
from mdp_core.telemetry import Metrics
from mdp_news_processor.processor import NewsProcessor
from mdp_processor.processor import Processor, ProcessorConfig
from mdp_queues import AmqpConsumer, AmqpPublisher, OutgoingBatch, Topology
from mdp_testing.conformance import aggregate, trade
from mdp_testing.redis_server import RedisServer


def market_batch(topology: Topology, events: Sequence[MarketEvent], batch: str) -> OutgoingBatch:
    spec = topology.for_kind(events[0].EV)
    assert spec is not None
    now = time.time_ns()
    raws = [msgspec.Raw(msgspec.json.encode(e)) for e in events]
    body = encode_envelope(kind=events[0].EV, source="t", batch=batch, received_ns=now, events=raws)
    return OutgoingBatch(spec, body, batch, now, len(events))


def news_batch(topology: Topology, batch: str, n: int, ticker: str) -> OutgoingBatch:
    article = {
        "link": f"https://news.example/{n}",
        "title": f"Story {n}",
        "publishDate": f"2026-11-23T14:{n:02d}:00Z",
        "source": "news.example",
        "language": "en",
        "companies": [{"companyId": n, "name": ticker, "ticker": ticker, "exchange": "NASDAQ"}],
    }
    raws = [msgspec.Raw(json.dumps(article).encode())]
    now = time.time_ns()
    body = encode_envelope(kind="news", source="t", batch=batch, received_ns=now, events=raws)
    return OutgoingBatch(topology.news, body, batch, now, 1)


async def json_at(redis: Redis, name: str) -> Any:
    raw = await redis.get(name)
    return None if raw is None else msgspec.json.decode(raw)


async def test_processors_survive_a_redis_crash_and_restart(
    amqp_url: str, mdq_prefix: str, private_redis: RedisServer
) -> None:
    topology = Topology(prefix=mdq_prefix)
    publisher = AmqpPublisher(amqp_url, topology, confirms=True)
    mdc, wdc, news_wdc = (create_redis(private_redis.url()) for _ in range(3))
    reader = create_redis(private_redis.url())
    market = Processor(
        AmqpConsumer(amqp_url, topology, prefetch=50),
        [
            LeaderboardAnalyzer(compose_interval_seconds=0.05),
            MassiveDataAnalyzer(compose_interval_seconds=0.05),
            TopTradesAnalyzer(publish_interval_seconds=0.05),
        ],
        state=RedisState(mdc),
        widgets=WidgetWriter(wdc),
        config=ProcessorConfig(flush_interval_seconds=0.02, retry=BackoffPolicy(0.05, 0.2)),
    )
    news_consumer = AmqpConsumer(amqp_url, topology, prefetch=10)
    news = NewsProcessor(
        news_consumer, topology.news, WidgetWriter(news_wdc), FinlightDataAnalyzer(),
        clock=LiveClock(), metrics=Metrics("news-restart-test"), batch_wait_seconds=0.02,
        retry=BackoffPolicy(0.05, 5.0),
    )  # fmt: skip
    stop_news = asyncio.Event()
    now = time.time_ns() // 1_000_000 - 30_000
    await publisher.start()
    await news_consumer.start()
    tasks = [asyncio.create_task(market.run()), asyncio.create_task(news.run(stop_news))]
    try:
        async with asyncio.timeout(30):
            publisher.publish(
                market_batch(topology, [aggregate("AAA", now, accumulated_volume=900)], "a1")
            )
            publisher.publish(market_batch(topology, [trade("AAA", now, 10.0, 300)], "t1"))
            publisher.publish(news_batch(topology, "n1", 1, "AAA"))
            await market.wait_until(lambda s: s.total_events == 2)
            await news.wait_until(lambda: news.batches == 1)
            assert news.status()["articles_bad"] == 0
            assert await reader.llen(FEED_NEWS_TICKER.name(symbol="AAA")) == 1
            # Applied is not written: wait until every output of AAA is in Redis, so that no
            # write of AAA is still pending (and would land in the new server) at the crash.
            await until_written(market, lambda: aaa_written(reader))

            await private_redis.crash()
            publisher.publish(
                market_batch(
                    topology, [aggregate("BBB", now + 1_000, accumulated_volume=500)], "a2"
                )
            )
            publisher.publish(market_batch(topology, [trade("BBB", now + 1_000, 20.0, 700)], "t2"))
            publisher.publish(news_batch(topology, "n2", 2, "BBB"))
            await market.wait_until(lambda s: s.write_failures >= 1 and not market.writable)
            await news.wait_until(lambda: not news.redis_ok)

            await private_redis.start()  # same port, empty: no state, no scripts
            await market.wait_until(lambda s: s.total_events == 4 and market.writable)
            await news.wait_until(lambda: news.batches == 2 and news.redis_ok)
            # What was held through the outage landed in the new server.
            while (stats := await json_at(reader, FEED_TRADE_STATS.name(symbol="BBB"))) is None:
                await next_flush(market)
            assert stats["total_volume"] == 700
            # The aggregate came through its own queue: applied may precede written.
            while (quote := await json_at(reader, FEED_QUOTE.name(symbol="BBB"))) is None:
                await next_flush(market)
            assert quote["accumulated_volume"] == 500
            assert 0 < await reader.ttl(FEED_QUOTE.name(symbol="BBB")) <= FEED_QUOTE.ttl
            assert await reader.llen(FEED_NEWS_TICKER.name(symbol="BBB")) == 1
            while not (top := await json_at(reader, FEED_TOP_TRADES.name())):
                await next_flush(market)
            assert [t["symbol"] for t in top["trades"]] == ["BBB"]
            # AAA's row was lost with the old server; its next bar puts it back on the board.
            publisher.publish(
                market_batch(
                    topology, [aggregate("AAA", now + 2_000, accumulated_volume=950)], "a3"
                )
            )
            while True:
                board = await json_at(reader, FEED_SCANNER_TOP_VOLUME.name())
                if board is not None and [r["symbol"] for r in board["rows"]] == ["AAA", "BBB"]:
                    break
                await next_flush(market)
    finally:
        market.stop()
        stop_news.set()
        with contextlib.suppress(Exception):
            await asyncio.gather(*tasks)
        await news_consumer.close()
        await publisher.close()
        for client in (mdc, wdc, news_wdc, reader):
            with contextlib.suppress(Exception):
                await close_redis(client)
    assert market.stats.write_errors == 0


async def aaa_written(reader: Redis) -> bool:
    """Whether AAA's quote record, trade statistics and top trades are all in Redis."""
    if await reader.get(FEED_QUOTE.name(symbol="AAA")) is None:
        return False
    if await reader.get(FEED_TRADE_STATS.name(symbol="AAA")) is None:
        return False
    top = await json_at(reader, FEED_TOP_TRADES.name())
    return bool(top) and [t["symbol"] for t in top["trades"]] == ["AAA"]


async def until_written(processor: Processor, written: Callable[[], Awaitable[bool]]) -> None:
    """Flush by flush until ``written()`` holds (the caller bounds the wait)."""
    while not await written():
        await next_flush(processor)


async def next_flush(processor: Processor) -> None:
    target = processor.stats.flushes + 1
    await processor.wait_until(lambda s: s.flushes >= target)
