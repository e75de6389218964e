"""The scanner (MDS) with the DailyRangeAnalyzer against the real Redis, on a manual clock."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import date
from typing import Any, ClassVar

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from mdp_analyzers.daily_range import DailyRangeAnalyzer
from mdp_analyzers.typing import FeedMessage, Output, WidgetWrite
from mdp_cache.client import create_redis
from mdp_cache.keys import FEED_DAILY_RANGE
from mdp_cache.widgets import WidgetWriter
from mdp_core.backoff import BackoffPolicy
from mdp_core.clock import ManualClock
from mdp_scanner import Scanner
from mdp_testing.conformance import at_ms
from mdp_testing.proxy import TcpProxy

DAY = date(2026, 3, 4)
NEXT = date(2026, 3, 5)
WAIT = 10.0
SYMBOL = "ZZMDS"


@pytest.fixture
async def redis_client(redis_db_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_db_url)
    try:
        yield client
    finally:
        await client.aclose()


class Scanners:
    """Starts scanners on the test database and stops them (one by one, or all at the end)."""

    def __init__(self, redis_url: str) -> None:
        self._url = redis_url
        self._running: dict[int, tuple[asyncio.Event, asyncio.Task[None], aioredis.Redis]] = {}

    async def start(
        self,
        clock: ManualClock,
        url: str | None = None,
        analyzers: list[Any] | None = None,
        **options: Any,
    ) -> Scanner:
        client = create_redis(url or self._url)
        scanner = Scanner(
            client,
            analyzers or [DailyRangeAnalyzer()],
            clock=clock,
            backoff=BackoffPolicy(0.02, 0.1, jitter=0.5),
            **options,
        )
        stop = asyncio.Event()
        task = asyncio.ensure_future(scanner.run(stop))
        self._running[id(scanner)] = (stop, task, client)
        assert await scanner.wait_ready(WAIT)
        return scanner

    async def stop(self, scanner: Scanner) -> None:
        stop, task, client = self._running.pop(id(scanner))
        stop.set()
        await task
        await client.aclose()

    async def stop_all(self) -> None:
        for key in list(self._running):
            stop, task, client = self._running.pop(key)
            stop.set()
            await task
            await client.aclose()


@pytest.fixture
async def scanners(redis_db_url: str) -> AsyncIterator[Scanners]:
    running = Scanners(redis_db_url)
    try:
        yield running
    finally:
        await running.stop_all()


def quote(ts_ms: int, price: float, high: float, low: float, symbol: str = SYMBOL) -> bytes:
    record = {"symbol": symbol, "price": price, "high": high, "low": low, "start_ms": ts_ms}
    return json.dumps(record).encode()


async def wait_until(condition: Callable[[], Awaitable[bool]], within: float = WAIT) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def range_doc(client: aioredis.Redis, symbol: str = SYMBOL) -> dict[str, Any] | None:
    raw = await client.get(f"range:{symbol}")
    return None if raw is None else dict(json.loads(raw))


async def alerts(client: aioredis.Redis, feed: str = "alerts:hod") -> list[dict[str, Any]]:
    return [json.loads(item) for item in await client.lrange(feed, 0, -1)]


async def publish_and_wait(
    client: aioredis.Redis, scanner: Scanner, payload: bytes, symbol: str = SYMBOL
) -> None:
    """Publish one quote and wait until the scanner has processed it."""
    done = scanner.stats.processed
    await client.publish(f"quote:{symbol}", payload)

    async def processed() -> bool:
        return scanner.stats.processed > done  # its batch's output is written

    await wait_until(processed)


async def test_range_documents_and_alerts_are_written_and_published(
    scanners: Scanners, redis_client: aioredis.Redis
) -> None:
    clock = ManualClock(at_ms(DAY, 10, 0) * 1_000_000)
    scanner = await scanners.start(clock)
    listener = redis_client.pubsub()
    await listener.subscribe("alerts:hod")
    try:
        await publish_and_wait(redis_client, scanner, quote(at_ms(DAY, 10, 0), 10, 10.5, 9.5))
        doc = await range_doc(redis_client)
        assert doc is not None
        assert (doc["regular_high"], doc["regular_low"]) == (10.5, 9.5)
        assert await redis_client.ttl(f"range:{SYMBOL}") > 0
        assert await alerts(redis_client) == []

        clock.advance(60)
        await publish_and_wait(redis_client, scanner, quote(at_ms(DAY, 10, 1), 11, 11.2, 10.8))
        (hod,) = await alerts(redis_client)
        assert (hod["symbol"], hod["price"], hod["previous"]) == (SYMBOL, 11.2, 10.5)
        published = None
        while published is None:
            message = await listener.get_message(timeout=WAIT)
            assert message is not None
            if message["type"] == "message":
                published = json.loads(message["data"])
        assert published == hod
    finally:
        await listener.aclose()  # type: ignore[no-untyped-call]


async def test_bad_messages_are_counted_and_skipped(
    scanners: Scanners, redis_client: aioredis.Redis
) -> None:
    clock = ManualClock(at_ms(DAY, 10, 0) * 1_000_000)
    scanner = await scanners.start(clock)
    await publish_and_wait(redis_client, scanner, b"{not json")
    await publish_and_wait(redis_client, scanner, quote(at_ms(DAY, 10, 0), 5, 5, 5))
    assert await range_doc(redis_client) is not None
    metrics = scanner.metrics_snapshot()
    assert metrics["rejected_total"] == {"reason=daily_range:invalid_json": 1}


async def test_restart_across_session_boundary_keeps_state_and_never_repeats_alerts(
    scanners: Scanners, redis_client: aioredis.Redis
) -> None:
    clock = ManualClock(at_ms(DAY, 8, 0) * 1_000_000)
    first = await scanners.start(clock)
    await publish_and_wait(redis_client, first, quote(at_ms(DAY, 8, 0), 4.5, 4.8, 4.4))
    await publish_and_wait(redis_client, first, quote(at_ms(DAY, 8, 1), 4.9, 5.0, 4.6))
    assert [a["previous"] for a in await alerts(redis_client)] == [4.8]

    # A new process after the open: it rehydrates the pre-market range from WDC.
    await scanners.stop(first)
    clock.set(at_ms(DAY, 9, 45) * 1_000_000)
    second = await scanners.start(clock)
    assert second.stats.snapshots_read == 1
    await publish_and_wait(redis_client, second, quote(at_ms(DAY, 9, 45), 4.7, 4.7, 4.6))
    await publish_and_wait(redis_client, second, quote(at_ms(DAY, 9, 46), 5.1, 5.1, 4.9))
    # 4.7 is below the restored pre-market high: no alert; 5.1 breaks it: one alert, noted.
    newest, oldest = await alerts(redis_client)
    assert (newest["session"], newest["note"]) == ("regular", "broke pre-market high of $5.00")
    assert oldest["session"] == "pre_market"


async def test_restart_after_04_00_ignores_yesterdays_range(
    scanners: Scanners, redis_client: aioredis.Redis
) -> None:
    clock = ManualClock(at_ms(DAY, 15, 0) * 1_000_000)
    first = await scanners.start(clock)
    await publish_and_wait(redis_client, first, quote(at_ms(DAY, 15, 0), 7, 7.5, 6.5))
    await scanners.stop(first)
    clock.set(at_ms(NEXT, 4, 30) * 1_000_000)
    second = await scanners.start(clock)
    await publish_and_wait(redis_client, second, quote(at_ms(NEXT, 4, 31), 6.0, 6.0, 6.0))

    async def today() -> bool:
        doc = await range_doc(redis_client)
        return doc is not None and doc["trading_day"] == "2026-03-05"

    await wait_until(today)
    doc = await range_doc(redis_client)
    assert doc is not None
    assert (doc["regular_high"], doc["pre_market_high"]) == (None, 6.0)
    assert await alerts(redis_client) == []
    assert await alerts(redis_client, "alerts:lod") == []


async def test_two_replicas_append_each_alert_once(
    scanners: Scanners, redis_client: aioredis.Redis
) -> None:
    clock = ManualClock(at_ms(DAY, 11, 0) * 1_000_000)
    one = await scanners.start(clock)
    two = await scanners.start(clock)
    await redis_client.publish(f"quote:{SYMBOL}", quote(at_ms(DAY, 11, 0), 3, 3, 3))
    await redis_client.publish(f"quote:{SYMBOL}", quote(at_ms(DAY, 11, 1), 3.5, 3.5, 3))

    async def both_done() -> bool:
        return (
            one.stats.processed >= 2
            and two.stats.processed >= 2
            and (one.stats.alerts_deduplicated + two.stats.alerts_deduplicated == 1)
        )

    await wait_until(both_done)
    assert [a["price"] for a in await alerts(redis_client)] == [3.5]


@pytest.fixture
async def proxy(redis_db_url: str) -> AsyncIterator[TcpProxy]:
    """A TCP proxy in front of the test Redis, to cut and restore a scanner's link."""
    running = TcpProxy.for_url(redis_db_url)
    await running.start()
    try:
        yield running
    finally:
        await running.close()


async def scanner_behind(
    proxy: TcpProxy, scanners: Scanners, redis_client: aioredis.Redis, redis_db_url: str
) -> Scanner:
    """A scanner reading Redis through ``proxy`` at 12:00, one quote of ``SYMBOL`` handled."""
    clock = ManualClock(at_ms(DAY, 12, 0) * 1_000_000)
    scanner = await scanners.start(clock, url=proxy.proxied(redis_db_url))
    await publish_and_wait(redis_client, scanner, quote(at_ms(DAY, 12, 0), 2, 2, 2))
    return scanner


async def cut(proxy: TcpProxy, scanner: Scanner) -> None:
    """Cut the link and wait until the scanner knows."""
    await proxy.cut()

    async def down() -> bool:
        return not scanner.ready

    await wait_until(down)


async def test_recovers_from_a_redis_connection_loss(
    scanners: Scanners, redis_client: aioredis.Redis, redis_db_url: str, proxy: TcpProxy
) -> None:
    scanner = await scanner_behind(proxy, scanners, redis_client, redis_db_url)
    await cut(proxy, scanner)
    await proxy.restore()
    assert await scanner.wait_ready(WAIT)
    assert scanner.stats.rehydrations == 2
    assert scanner.stats.reconnects >= 1
    await publish_and_wait(redis_client, scanner, quote(at_ms(DAY, 12, 5), 2.5, 2.5, 2))
    assert [a["price"] for a in await alerts(redis_client)] == [2.5]


async def test_a_quote_record_published_while_the_link_was_down_is_caught_up(
    scanners: Scanners, redis_client: aioredis.Redis, redis_db_url: str, proxy: TcpProxy
) -> None:
    """Pub/sub keeps no backlog: a symbol whose only record came while the scanner was away
    (a failover) got no range at all; its snapshot now reaches the analyzer after reconnect."""
    scanner = await scanner_behind(proxy, scanners, redis_client, redis_db_url)
    await cut(proxy, scanner)
    # Written as the processor writes a quote record: the snapshot, then the publish.
    away = "ZZAWAY"
    await redis_client.set(f"quote:{away}", quote(at_ms(DAY, 12, 1), 7, 7.5, 6.5, away))
    assert await redis_client.publish(f"quote:{away}", b"{}") == 0  # nobody listens
    await redis_client.set(f"quote:{SYMBOL}", quote(at_ms(DAY, 12, 2), 3, 3.25, 2))
    await proxy.restore()
    assert await scanner.wait_ready(WAIT)  # ready once caught up
    assert scanner.stats.caught_up == 2
    doc = await range_doc(redis_client, away)
    assert doc is not None
    assert (doc["regular_high"], doc["regular_low"], doc["price"]) == (7.5, 6.5, 7)
    doc = await range_doc(redis_client)
    assert doc is not None
    assert (doc["regular_high"], doc["price"]) == (3.25, 3)
    assert [a["price"] for a in await alerts(redis_client)] == [3.25]  # the missed HOD
    # What was seen already merges as a no-op: a second catch-up changes nothing.
    before = (await range_doc(redis_client), await alerts(redis_client))
    await cut(proxy, scanner)
    await proxy.restore()
    assert await scanner.wait_ready(WAIT)
    assert scanner.stats.caught_up == 4
    assert (await range_doc(redis_client), await alerts(redis_client)) == before


async def test_a_quote_record_written_before_the_scanner_started_is_caught_up(
    scanners: Scanners, redis_client: aioredis.Redis
) -> None:
    """A restart is an absence too: the record written while no scanner ran reaches its range."""
    await redis_client.set(f"quote:{SYMBOL}", quote(at_ms(DAY, 11, 0), 4, 4.5, 3.5))
    scanner = await scanners.start(ManualClock(at_ms(DAY, 11, 1) * 1_000_000))
    assert scanner.stats.caught_up == 1  # ready once caught up
    doc = await range_doc(redis_client)
    assert doc is not None
    assert (doc["regular_high"], doc["regular_low"], doc["price"]) == (4.5, 3.5, 4)


class Exploding:
    name: ClassVar[str] = "exploding"
    consumes: ClassVar[frozenset[str]] = frozenset({"quote:*"})

    def apply(self, inputs: Sequence[FeedMessage], now_ns: int) -> None:
        raise RuntimeError("an analyzer bug")

    def collect(self, now_ns: int) -> Output:
        return Output()


class Recording:
    name: ClassVar[str] = "recording"
    consumes: ClassVar[frozenset[str]] = frozenset({"halts"})

    def __init__(self) -> None:
        self.seen: list[str] = []

    def apply(self, inputs: Sequence[FeedMessage], now_ns: int) -> None:
        self.seen.extend(m.name for m in inputs)

    def collect(self, now_ns: int) -> Output:
        return Output()


async def test_routes_by_channel_and_isolates_a_failing_analyzer(
    scanners: Scanners, redis_client: aioredis.Redis
) -> None:
    clock = ManualClock(at_ms(DAY, 10, 0) * 1_000_000)
    recording = Recording()
    scanner = await scanners.start(clock, analyzers=[Exploding(), DailyRangeAnalyzer(), recording])
    await publish_and_wait(redis_client, scanner, quote(at_ms(DAY, 10, 0), 1, 1, 1))
    seen = scanner.stats.processed
    await redis_client.publish("halts", b"{}")

    async def halts_seen() -> bool:
        return scanner.stats.processed > seen

    await wait_until(halts_seen)
    assert recording.seen == ["halts"]
    assert scanner.stats.errors["analyzer:exploding"] == 1
    assert await range_doc(redis_client) is not None  # the other analyzers kept working


async def test_rehydrates_before_streaming_and_skips_list_feeds(
    scanners: Scanners, redis_client: aioredis.Redis
) -> None:
    doc = {
        "symbol": SYMBOL,
        "trading_day": "2026-03-04",
        "session": "regular",
        "price": 5.0,
        "as_of_ms": at_ms(DAY, 9, 59),
        "regular_high": 5.0,
        "regular_low": 4.0,
    }
    await redis_client.set(f"range:{SYMBOL}", json.dumps(doc))
    await redis_client.lpush("alerts:hod", b"{}")
    scanner = await scanners.start(ManualClock(at_ms(DAY, 10, 0) * 1_000_000))
    assert scanner.stats.snapshots_read == 1
    await publish_and_wait(redis_client, scanner, quote(at_ms(DAY, 10, 0), 5.0, 5.0, 4.5))
    await publish_and_wait(redis_client, scanner, quote(at_ms(DAY, 10, 1), 5.5, 5.5, 5.0))
    newest = (await alerts(redis_client))[0]
    assert (newest["price"], newest["previous"]) == (5.5, 5.0)


class Misnaming:
    """An analyzer bug: a write whose name no feed holds (a symbol with a space)."""

    name: ClassVar[str] = "misnaming"
    consumes: ClassVar[frozenset[str]] = frozenset({"quote:*"})

    def apply(self, inputs: Sequence[FeedMessage], now_ns: int) -> None:
        pass

    def collect(self, now_ns: int) -> Output:
        return Output(widgets=[WidgetWrite(FEED_DAILY_RANGE, "range:A B", b"{}")])


async def test_a_record_no_feed_name_can_hold_costs_only_itself_at_start_and_live(
    scanners: Scanners, redis_client: aioredis.Redis
) -> None:
    """Such a record in a snapshot would end every start's catch-up: the scanner crash-looped."""
    bad = quote(at_ms(DAY, 9, 45), 5.0, 5.0, 5.0, symbol="ZZ BAD")
    await redis_client.set("quote:ZZBAD", bad)
    await redis_client.set(f"quote:{SYMBOL}", quote(at_ms(DAY, 9, 45), 5.0, 5.0, 5.0))
    clock = ManualClock(at_ms(DAY, 10, 0) * 1_000_000)
    scanner = await scanners.start(clock, analyzers=[DailyRangeAnalyzer(), Misnaming()])
    assert await range_doc(redis_client) is not None  # the catch-up went through
    await publish_and_wait(redis_client, scanner, bad, symbol="ZZBAD")
    await publish_and_wait(redis_client, scanner, quote(at_ms(DAY, 10, 0), 6.0, 6.0, 5.0))
    assert (await range_doc(redis_client) or {})["regular_high"] == 6.0
    assert scanner.metrics_snapshot()["rejected_total"] == {"reason=daily_range:invalid_json": 2}
    # One bad write per batch: the catch-up's and the two live ones; never written.
    assert scanner.stats.errors["bad_write:misnaming"] == 3
    assert await redis_client.exists("range:A B") == 0


async def test_an_alert_whose_write_failed_after_its_marker_was_set_lands_on_the_replay(
    scanners: Scanners, redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replay must not take the scanner's own dedup marker for another replica's append."""
    clock = ManualClock(at_ms(DAY, 10, 0) * 1_000_000)
    scanner = await scanners.start(clock)
    await publish_and_wait(redis_client, scanner, quote(at_ms(DAY, 10, 0), 10, 10, 10))
    write = WidgetWriter.write
    failures: list[int] = []

    async def failing_once(self: WidgetWriter, items: Sequence[Any]) -> int:
        if not failures:
            failures.append(len(items))
            raise RedisConnectionError("the link dropped mid-write")
        return await write(self, items)

    monkeypatch.setattr(WidgetWriter, "write", failing_once)
    await redis_client.publish(f"quote:{SYMBOL}", quote(at_ms(DAY, 10, 1), 11, 11, 10))

    async def alerted() -> bool:
        return len(await alerts(redis_client)) == 1

    await wait_until(alerted)
    assert failures == [2]  # the range document and the alert, after the markers were set
    assert scanner.stats.reconnects == 1
    assert scanner.stats.alerts_deduplicated == 0
    (hod,) = await alerts(redis_client)
    assert (hod["price"], hod["previous"]) == (11, 10)
    markers = [key async for key in redis_client.scan_iter(match="mdp:scanner:dedup:*")]
    assert len(markers) == 1
    # A marker outlives a trading day (04:00-20:00): a restart late in the day finds it.
    assert await redis_client.ttl(markers[0]) > 16 * 3600
