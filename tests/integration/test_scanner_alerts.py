"""The scanner (MDS) with the unusual-volume, news-mover and halt analyzers, on the real Redis.

Two replicas see every message (pub/sub is a broadcast) and each alert is appended once; a
restarted replica, which starts without state and raises the same alerts again with other
figures, appends nothing new (the alerts' identities).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date
from typing import Any

import pytest
import redis.asyncio as aioredis

from mdp_analyzers.halt_alerts import HaltAlertsAnalyzer
from mdp_analyzers.news_movers import NewsMoversAnalyzer
from mdp_analyzers.unusual_volume import UnusualVolumeAnalyzer
from mdp_cache.client import create_redis
from mdp_core.backoff import BackoffPolicy
from mdp_core.clock import ManualClock
from mdp_scanner import Scanner
from mdp_testing.conformance import at_ms

DAY = date(2026, 3, 4)
WAIT = 10.0


@pytest.fixture
async def client(redis_db_url: str) -> AsyncIterator[aioredis.Redis]:
    redis = aioredis.Redis.from_url(redis_db_url)
    try:
        yield redis
    finally:
        await redis.aclose()


def analyzers() -> list[Any]:
    return [
        UnusualVolumeAnalyzer(rvol_thresholds=(2.0, 5.0), rvol_min_volume=1_000),
        NewsMoversAnalyzer(news_move_pct=5.0),
        HaltAlertsAnalyzer(),
    ]


class Replica:
    """One scanner on the test database."""

    def __init__(self, url: str, clock: ManualClock) -> None:
        self.redis = create_redis(url)
        self.scanner = Scanner(
            self.redis, analyzers(), clock=clock, backoff=BackoffPolicy(0.02, 10.0, jitter=0.5)
        )
        self.stop = asyncio.Event()
        self.task: asyncio.Future[None] | None = None

    async def start(self) -> Replica:
        self.task = asyncio.ensure_future(self.scanner.run(self.stop))
        assert await self.scanner.wait_ready(WAIT)
        return self

    async def close(self) -> None:
        self.stop.set()
        if self.task is not None:
            await self.task
        await self.redis.aclose()


@pytest.fixture
async def replicas(redis_db_url: str) -> AsyncIterator[Callable[[ManualClock], Awaitable[Replica]]]:
    started: list[Replica] = []

    async def start(clock: ManualClock) -> Replica:
        replica = await Replica(redis_db_url, clock).start()
        started.append(replica)
        return replica

    try:
        yield start
    finally:
        for replica in started:
            if not replica.stop.is_set():
                await replica.close()


async def wait_until(condition: Callable[[], bool], within: float = WAIT) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def publish(
    client: aioredis.Redis, running: list[Replica], channel: str, payload: dict[str, Any]
) -> None:
    """Publish one message and wait until every running replica has written its output."""
    before = [replica.scanner.stats.processed for replica in running]
    await client.publish(channel, json.dumps(payload).encode())
    await wait_until(
        lambda: all(
            replica.scanner.stats.processed > done
            for replica, done in zip(running, before, strict=True)
        )
    )


def quote(
    symbol: str, end_ms: int, price: float, rvol: float, open_: float = 0.0
) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "trading_day": DAY.isoformat(),
        "price": price,
        "open": open_ or price,
        "start_ms": end_ms - 1_000,
        "end_ms": end_ms,
        "accumulated_volume": 50_000,
        "rvol_tod": rvol,
    }


async def feed(client: aioredis.Redis, name: str) -> list[dict[str, Any]]:
    return [json.loads(item) for item in await client.lrange(name, 0, -1)]


async def test_two_replicas_write_each_new_alert_once_newest_first(
    client: aioredis.Redis, replicas: Callable[[ManualClock], Awaitable[Replica]]
) -> None:
    clock = ManualClock(at_ms(DAY, 10, 0) * 1_000_000)
    running = [await replicas(clock), await replicas(clock)]

    async def send(channel: str, payload: dict[str, Any]) -> None:
        await publish(client, running, channel, payload)

    await send("quote:ACME", quote("ACME", at_ms(DAY, 10, 0), 10.0, 1.0))
    await send(
        "news:latest",
        {
            "link": "https://n/1",
            "title": "ACME wins a contract",
            "source": "wire",
            "published_ms": at_ms(DAY, 10, 0),
            "tickers": ["ACME"],
        },
    )
    await send("quote:ACME", quote("ACME", at_ms(DAY, 10, 2), 10.7, 2.4))
    await send(
        "luld:ACME",
        {
            "ev": "LULD",
            "T": "ACME",
            "h": 11.0,
            "l": 9.0,
            "i": [17],
            "t": at_ms(DAY, 10, 3),
            "halted": True,
        },
    )
    await send(
        "luld:ACME",
        {
            "ev": "LULD",
            "T": "ACME",
            "h": 11.5,
            "l": 9.5,
            "i": [18],
            "t": at_ms(DAY, 10, 8),
            "halted": False,
        },
    )
    await send("quote:ACME", quote("ACME", at_ms(DAY, 10, 8) + 1_000, 11.2, 5.5, open_=11.1))

    (moved,) = await feed(client, "alerts:news")
    assert (moved["headline"], moved["reason"], moved["pct_move"]) == (
        "ACME wins a contract",
        "price",
        7.0,
    )
    volume = await feed(client, "alerts:volume")
    assert [(a["threshold"], a["as_of_ms"]) for a in volume] == [
        (5.0, at_ms(DAY, 10, 8) + 1_000),
        (2.0, at_ms(DAY, 10, 2)),
    ]  # newest first
    halts = await feed(client, "alerts:halts")
    assert [(a["kind"], a["price"]) for a in halts] == [("resume", 11.1), ("halt", 10.7)]
    assert halts[1]["high_limit"] == 11.0
    deduplicated = sum(replica.scanner.stats.alerts_deduplicated for replica in running)
    assert deduplicated == 5  # every alert was raised by both replicas, appended by one

    # A replica restarts: it has no state, sees ACME already past 5x and raises 2x... again?
    # No: one alert for the highest threshold, whose identity was appended already.
    await running[1].close()
    running = [running[0], await replicas(clock)]
    await send("quote:ACME", quote("ACME", at_ms(DAY, 10, 9), 11.3, 5.6))
    assert len(await feed(client, "alerts:volume")) == 2
    assert running[1].scanner.stats.alerts_deduplicated == 1


async def test_a_scanner_started_after_the_news_reads_it_back(
    client: aioredis.Redis, replicas: Callable[[ManualClock], Awaitable[Replica]]
) -> None:
    item = {
        "link": "https://n/2",
        "title": "BOLT raises guidance",
        "source": "wire",
        "published_ms": at_ms(DAY, 11, 0),
        "tickers": ["BOLT"],
    }
    await client.lpush("news:latest", json.dumps(item))  # stored before the scanner starts
    clock = ManualClock(at_ms(DAY, 11, 2) * 1_000_000)
    running = [await replicas(clock)]
    assert running[0].scanner.stats.snapshots_read >= 1
    await publish(client, running, "quote:BOLT", quote("BOLT", at_ms(DAY, 11, 2), 20.0, 1.0))
    await publish(client, running, "quote:BOLT", quote("BOLT", at_ms(DAY, 11, 3), 21.2, 1.0))
    (moved,) = await feed(client, "alerts:news")
    assert (moved["symbol"], moved["headline"], moved["base_price"]) == (
        "BOLT",
        "BOLT raises guidance",
        20.0,
    )
