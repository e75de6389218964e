"""Two processor replicas on one set of queues (real RabbitMQ, real Redis), as the HPA runs them.

The broker hands each replica part of every symbol's trades and bars. Whatever the split, the
published documents must be those of one process that saw everything: trade statistics over
the shared window and the market-wide board equal a recomputation from all the trades (a trade
delivered twice counted once), the quote record is the one of the latest bar, never an
older one written last by the other replica, and a halt that reached one replica flags the
symbol's record and the halts document whichever replica wrote them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
from redis.asyncio import Redis

from mdp_analyzers.leaderboard import LeaderboardAnalyzer
from mdp_analyzers.routing import MassiveDataAnalyzer
from mdp_analyzers.top_trades import TopTradesAnalyzer
from mdp_cache.client import close_redis, create_redis
from mdp_cache.keys import FEED_HALTS, FEED_QUOTE, FEED_TOP_TRADES, FEED_TRADE_STATS
from mdp_cache.state import RedisState
from mdp_cache.widgets import WidgetWriter
from mdp_core.clock import LiveClock
from mdp_core.envelope import encode_envelope
from mdp_core.events import MarketEvent, Trade
from mdp_processor.processor import Processor, ProcessorConfig
from mdp_processor.stats import ProcessorStats
from mdp_queues import AmqpConsumer, AmqpPublisher, OutgoingBatch, Topology
from mdp_testing.conformance import aggregate, luld, trade

TOP_N = 5
STATS_KEYS = ("trade_count", "total_volume", "max_size", "latest_price")


def outgoing(topology: Topology, events: Sequence[MarketEvent], batch: str) -> OutgoingBatch:
    spec = topology.for_kind(events[0].EV)
    assert spec is not None
    now = LiveClock().now_ns()
    raws = [msgspec.Raw(msgspec.json.encode(e)) for e in events]
    body = encode_envelope(kind=events[0].EV, source="t", batch=batch, received_ns=now, events=raws)
    return OutgoingBatch(spec, body, batch, now, len(events))


class Replica:
    """One processor with its own connections, as one worker process has."""

    def __init__(self, name: str, amqp_url: str, topology: Topology, redis_url: str) -> None:
        self.mdc = create_redis(redis_url)
        self.wdc = create_redis(redis_url)
        self.processor = Processor(
            AmqpConsumer(amqp_url, topology, prefetch=2),
            [
                LeaderboardAnalyzer(compose_interval_seconds=0.05),
                MassiveDataAnalyzer(compose_interval_seconds=0.05),
                TopTradesAnalyzer(top_n=TOP_N, publish_interval_seconds=0.05),
            ],
            state=RedisState(self.mdc),
            widgets=WidgetWriter(self.wdc),
            config=ProcessorConfig(flush_interval_seconds=0.02, batch_messages=1, instance=name),
        )
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.processor.run())
        async with asyncio.timeout(15):
            await self.processor.wait_until(lambda s: self.processor.consumer.connected)

    async def stop(self) -> None:
        self.processor.stop()
        if self.task is not None:
            await self.task
        await close_redis(self.mdc)
        await close_redis(self.wdc)


def expected_stats(trades: list[Trade]) -> dict[str, Any]:
    figures = (
        len(trades),
        sum(t.size for t in trades),
        max(t.size for t in trades),
        max(trades, key=lambda t: t.timestamp_ms).price,
    )
    return dict(zip(STATS_KEYS, figures, strict=True))


async def test_two_replicas_publish_what_one_process_seeing_everything_would(
    amqp_url: str, mdq_prefix: str, redis_db_url: str, redis: Redis
) -> None:
    topology = Topology(prefix=mdq_prefix)
    replicas = [Replica(f"r{n}", amqp_url, topology, redis_db_url) for n in range(2)]
    publisher = AmqpPublisher(amqp_url, topology, confirms=True)
    start_ms = LiveClock().now_ns() // 1_000_000 - 60_000
    trades = {
        symbol: [
            trade(symbol, start_ms + i * 37, base + i / 100, 100 + (i * 7919) % 900)
            for i in range(60)
        ]
        for symbol, base in (("AAA", 10.0), ("BBB", 20.0))
    }
    bars = [
        aggregate("AAA", start_ms + s * 1_000, accumulated_volume=1_000 * s) for s in range(1, 41)
    ]
    try:
        for replica in replicas:
            await replica.start()
        await publisher.start()
        n = 0
        for prints in trades.values():
            for i in range(0, len(prints), 3):
                publisher.publish(outgoing(topology, prints[i : i + 3], f"t{n}"))
                n += 1
            # The same prints again under new batch ids: a listener resent them.
            publisher.publish(outgoing(topology, prints[10:16], f"t{n}"))
            n += 1
        for s, bar in enumerate(bars):
            publisher.publish(outgoing(topology, [bar], f"a{s}"))
        # AAA is halted after its last bar: one replica gets the LULD message.
        publisher.publish(outgoing(topology, [luld("AAA", bars[-1].end_ms + 500, 17)], "h0"))
        total = sum(len(p) + 6 for p in trades.values()) + len(bars) + 1
        async with asyncio.timeout(30):
            while sum(r.processor.stats.total_events for r in replicas) < total:
                await next_flush(replicas)
            # Both replicas took part, so each document mixes their writes.
            assert all(r.processor.stats.events["T"] > 0 for r in replicas)
            assert all(r.processor.stats.events["A"] > 0 for r in replicas)
            expected = {symbol: expected_stats(prints) for symbol, prints in trades.items()}
            every = [t for prints in trades.values() for t in prints]
            best = sorted(every, key=lambda t: round(t.price * t.size, 2), reverse=True)[:TOP_N]
            wanted = (
                expected,
                [t.trade_id for t in best],
                (bars[-1].accumulated_volume, True),
                ["AAA"],
            )
            # Compositions run on whichever replica holds the lease: wait for one after the
            # last write (the documents then stop changing).
            while await documents(redis) != wanted:
                await next_flush(replicas)
    finally:
        with contextlib.suppress(Exception):
            await publisher.close()
        for replica in replicas:
            await replica.stop()
    assert sum(r.processor.stats.compositions for r in replicas) > 0


def flushed_beyond(count: int) -> Callable[[ProcessorStats], bool]:
    return lambda stats: stats.flushes > count


async def next_flush(replicas: list[Replica]) -> None:
    """Return after the next flush of any replica."""
    waits = [
        asyncio.ensure_future(
            replica.processor.wait_until(flushed_beyond(replica.processor.stats.flushes))
        )
        for replica in replicas
    ]
    _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for waiting in pending:
        waiting.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


async def documents(
    redis: Redis,
) -> tuple[dict[str, Any], list[str], tuple[int, bool] | None, list[str]]:
    stats: dict[str, Any] = {}
    for symbol in ("AAA", "BBB"):
        raw = await redis.get(FEED_TRADE_STATS.name(symbol=symbol))
        if raw is not None:
            doc = msgspec.json.decode(raw)
            stats[symbol] = {key: doc[key] for key in STATS_KEYS}
    raw_board = await redis.get(FEED_TOP_TRADES.name())
    board = (
        []
        if raw_board is None
        else [t["trade_id"] for t in msgspec.json.decode(raw_board)["trades"]]
    )
    raw_quote = await redis.get(FEED_QUOTE.name(symbol="AAA"))
    quote = None
    if raw_quote is not None:
        decoded = msgspec.json.decode(raw_quote)
        quote = (decoded["accumulated_volume"], decoded["halted"])
    raw_halts = await redis.get(FEED_HALTS.name())
    halted = [] if raw_halts is None else sorted(msgspec.json.decode(raw_halts)["symbols"])
    return stats, board, quote, halted
