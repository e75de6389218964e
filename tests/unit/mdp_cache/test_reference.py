from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import date, timedelta

import fakeredis
import msgspec
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, SlotNotCoveredError

from mdp_cache.keys import KEY_REF_FREE_FLOAT, KEY_REF_SNAPSHOT, REF_NEGATIVE_TTL
from mdp_cache.records import DailyBar, ReferenceData
from mdp_cache.reference import (
    LOOKBACK_DAYS,
    MemoryBulkReferenceSource,
    MemoryReferenceSource,
    ReferenceCache,
    daily_bar_from_agg,
    daily_bars_by_ticker,
    grouped_daily_bars,
)

DAY = date(2026, 3, 4)


def bars(symbol_days: int, *, include_today: bool = False) -> list[DailyBar]:
    out = [
        DailyBar(day=DAY - timedelta(days=i), open=1, high=1, low=1, close=float(i), volume=i * 100)
        for i in range(1, symbol_days + 1)
    ]
    if include_today:
        out.append(DailyBar(day=DAY, open=1, high=1, low=1, close=99.0, volume=10**9))
    return out


class GatedSource:
    """A source whose calls block until released, to make callers overlap."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.both_called = asyncio.Event()
        self.calls = 0
        self.fail = False

    def _called(self) -> None:
        self.calls += 1
        if self.calls >= 2:
            self.both_called.set()

    async def daily_bars(self, symbol: str, start: date, end: date) -> Sequence[DailyBar]:
        self._called()
        await self.gate.wait()
        if self.fail:
            raise ConnectionError("vendor down")
        return bars(3)

    async def free_float(self, symbol: str) -> int | None:
        self._called()
        await self.gate.wait()
        if self.fail:
            raise ConnectionError("vendor down")
        return 1_000


async def test_previous_day_and_average_use_completed_days_only() -> None:
    source = MemoryReferenceSource({"AAA": bars(40, include_today=True)}, {"AAA": 5_000})
    data = await ReferenceCache(source).get("AAA", DAY)
    assert data.prev_day is not None
    assert data.prev_day.day == DAY - timedelta(days=1)
    # Mean of the 30 most recent completed days (1..30 days back): today's bar excluded.
    assert data.avg_volume == sum(i * 100 for i in range(1, 31)) / 30
    assert data.free_float == 5_000
    assert data.completeness == 7


async def test_negative_entries_are_hits_that_never_reach_the_source() -> None:
    redis = fakeredis.FakeAsyncRedis()
    source = MemoryReferenceSource()
    first = await ReferenceCache(source, redis).get("NONE", DAY)
    assert first == ReferenceData(symbol="NONE", trading_day=DAY)
    assert source.calls == 2
    key = KEY_REF_SNAPSHOT.name(day=DAY.isoformat(), symbol="NONE")
    assert await redis.get(key) == b"null"
    assert 0 < await redis.ttl(key) <= REF_NEGATIVE_TTL
    # Another process (fresh cache object, same Redis): a hit, the source is not asked again.
    other = ReferenceCache(source, redis)
    assert await other.get("NONE", DAY) == first
    assert source.calls == 2
    assert other.stats.negative_hits == 2
    assert other.stats.fetches == 0


async def test_concurrent_lookups_in_one_process_share_one_fetch() -> None:
    source = GatedSource()
    cache = ReferenceCache(source, fakeredis.FakeAsyncRedis())
    tasks = [asyncio.create_task(cache.get("AAA", DAY)) for _ in range(20)]
    await source.both_called.wait()
    source.gate.set()
    results = await asyncio.gather(*tasks)
    assert source.calls == 2
    assert {r.free_float for r in results} == {1_000}


async def test_a_process_that_loses_the_lock_reads_the_winners_value() -> None:
    redis = fakeredis.FakeAsyncRedis()
    source = GatedSource()
    winner = ReferenceCache(source, redis)
    loser = ReferenceCache(source, redis, lock_wait_seconds=5.0)
    lost_both = asyncio.Event()
    real_acquire = loser._acquire

    async def acquire(lock_key: str, token: str) -> bool:
        owner = await real_acquire(lock_key, token)
        if not owner and loser.stats.lock_waits >= 1:
            lost_both.set()
        return owner

    loser._acquire = acquire  # type: ignore[method-assign]
    first = asyncio.create_task(winner.get("AAA", DAY))
    await source.both_called.wait()
    second = asyncio.create_task(loser.get("AAA", DAY))
    await lost_both.wait()
    source.gate.set()
    assert (await first) == (await second)
    assert source.calls == 2
    assert loser.stats.fetches == 0


async def test_a_failing_source_degrades_the_record_and_backs_off() -> None:
    source = GatedSource()
    source.fail = True
    source.gate.set()
    redis = fakeredis.FakeAsyncRedis()
    cache = ReferenceCache(source, redis, retry_after_seconds=60)
    data = await cache.get("AAA", DAY)
    assert data == ReferenceData(symbol="AAA", trading_day=DAY)
    assert cache.stats.errors == 2
    assert await redis.get(KEY_REF_FREE_FLOAT.name(symbol="AAA")) is None  # not cached
    await cache.get("AAA", DAY)
    assert source.calls == 2  # within the back-off: not asked again


async def test_without_redis_the_cache_still_works_in_process() -> None:
    source = MemoryReferenceSource({"AAA": bars(2)}, {})
    cache = ReferenceCache(source)
    await cache.get("AAA", DAY)
    await cache.get("AAA", DAY)
    assert source.calls == 2
    cache.forget_day(DAY + timedelta(days=1))
    await cache.get("AAA", DAY + timedelta(days=1))
    assert source.calls == 4


@pytest.mark.parametrize("value", [0, -5, None])
async def test_empty_free_float_is_negative(value: int | None) -> None:
    source = MemoryReferenceSource({}, {"AAA": value} if value is not None else {})
    data = await ReferenceCache(source, fakeredis.FakeAsyncRedis()).get("AAA", DAY)
    assert data.free_float is None


# --- bulk loads ----------------------------------------------------------------------------


def universe(count: int) -> dict[str, list[DailyBar]]:
    return {f"S{n:04d}": [*bars(40)] for n in range(count)}


async def test_a_bulk_source_is_asked_once_per_day_not_twice_per_symbol() -> None:
    source = MemoryBulkReferenceSource(universe(300), {f"S{n:04d}": 1_000 + n for n in range(300)})
    cache = ReferenceCache(source, fakeredis.FakeAsyncRedis())
    found = await asyncio.gather(*(cache.get(f"S{n:04d}", DAY) for n in range(300)))
    # One grouped-daily request per calendar day of the look-back, one for the floats.
    assert source.calls == LOOKBACK_DAYS + 1
    assert cache.stats.bulk_loads == 1
    assert cache.stats.bulk_symbols == 300
    # The same records the per-symbol path derives.
    single = await ReferenceCache(MemoryReferenceSource(universe(1), {"S0000": 1_000})).get(
        "S0000", DAY
    )
    assert found[0] == single
    assert found[299].free_float == 1_299


async def test_a_symbol_the_bulk_load_missed_is_looked_up_alone() -> None:
    source = MemoryBulkReferenceSource(universe(2), {})
    cache = ReferenceCache(source, fakeredis.FakeAsyncRedis())
    await cache.get("S0000", DAY)
    calls = source.calls
    late = await cache.get("NEW", DAY)  # listed today: not in any grouped answer
    assert late.prev_day is None
    assert source.calls == calls + 2  # its own daily and float lookups


async def test_a_failing_bulk_load_leaves_the_per_symbol_lookups_working() -> None:
    class Broken(MemoryBulkReferenceSource):
        async def free_floats(self) -> dict[str, int]:
            raise ConnectionError("vendor down")

    source = Broken(universe(1), {"S0000": 7})
    cache = ReferenceCache(source, fakeredis.FakeAsyncRedis())
    data = await cache.get("S0000", DAY)
    assert cache.stats.bulk_errors == 1
    assert (data.prev_day is not None, data.free_float) == (True, 7)


async def test_one_process_loads_the_day_and_the_others_read_it() -> None:
    redis = fakeredis.FakeAsyncRedis()
    first_source = MemoryBulkReferenceSource(universe(50), {})
    second_source = MemoryBulkReferenceSource(universe(50), {})
    await ReferenceCache(first_source, redis).get("S0001", DAY)
    data = await ReferenceCache(second_source, redis).get("S0002", DAY)
    assert data.prev_day is not None
    assert second_source.calls == 0  # the day's marker and records were in MDC


async def test_a_slow_grouped_daily_answer_is_waited_for_beyond_the_per_symbol_timeout() -> None:
    """A whole market's answer takes longer than one symbol's: the bulk bound is its own."""

    class Slow(MemoryBulkReferenceSource):
        async def grouped_daily(self, day: date) -> dict[str, DailyBar]:
            await asyncio.sleep(0.05)  # the vendor building a large answer, not a sync point
            return dict(await super().grouped_daily(day))

    source = Slow(universe(3), {})
    cache = ReferenceCache(source, fakeredis.FakeAsyncRedis(), fetch_timeout_seconds=0.01)
    data = await cache.get("S0002", DAY)
    assert (cache.stats.bulk_errors, cache.stats.bulk_symbols) == (0, 3)
    assert data.prev_day is not None
    assert data.prev_day.day == DAY - timedelta(days=1)


async def test_a_day_that_fails_once_is_asked_again_and_the_load_covers_every_symbol() -> None:
    class Flaky(MemoryBulkReferenceSource):
        failed: set[date]

        async def grouped_daily(self, day: date) -> dict[str, DailyBar]:
            if day not in self.failed:
                self.failed.add(day)
                raise TimeoutError("read timed out")
            return dict(await super().grouped_daily(day))

    source = Flaky(universe(20), {})
    source.failed = set()
    cache = ReferenceCache(source, fakeredis.FakeAsyncRedis())
    found = await asyncio.gather(*(cache.get(f"S{n:04d}", DAY) for n in range(20)))
    assert cache.stats.bulk_errors == 0
    assert cache.stats.bulk_retries == LOOKBACK_DAYS
    assert cache.stats.fetches == 0  # no symbol fell back to its own lookups
    # The previous close is the most recent day's (close = days back), for every symbol.
    assert {d.prev_day.close if d.prev_day else None for d in found} == {1.0}


async def test_a_day_that_keeps_failing_fails_the_load_rather_than_shift_the_previous_day() -> None:
    class Broken(MemoryBulkReferenceSource):
        async def grouped_daily(self, day: date) -> dict[str, DailyBar]:
            if day == DAY - timedelta(days=1):
                raise ConnectionError("vendor down")
            return dict(await super().grouped_daily(day))

    source = Broken(universe(2), {})
    cache = ReferenceCache(source, fakeredis.FakeAsyncRedis(), bulk_attempts=2)
    data = await cache.get("S0000", DAY)
    assert (cache.stats.bulk_errors, cache.stats.bulk_retries) == (1, 1)
    # Not the day before yesterday's bar from an incomplete load: the per-symbol lookup's.
    assert data.prev_day is not None
    assert data.prev_day.day == DAY - timedelta(days=1)


class CountingRedis(fakeredis.FakeAsyncRedis):
    """Counts single-key ``GET`` commands (pipelined ones are not counted)."""

    gets = 0

    async def get(self, name: str) -> object:  # type: ignore[override]
        self.gets += 1
        return await super().get(name)


async def test_the_other_processes_read_the_bulk_loaded_day_at_once_not_key_by_key() -> None:
    """10,000 single GETs through a pool of a few connections timed out under load."""
    server = fakeredis.FakeServer()
    loader = ReferenceCache(
        MemoryBulkReferenceSource(universe(200), {}), fakeredis.FakeAsyncRedis(server=server)
    )
    await loader.get("S0000", DAY)
    redis = CountingRedis(server=server)
    source = MemoryBulkReferenceSource(universe(200), {})
    reader = ReferenceCache(source, redis)
    found = await asyncio.gather(*(reader.get(f"S{n:04d}", DAY) for n in range(200)))
    assert all(data.prev_day is not None for data in found)
    assert source.calls == 0
    assert redis.gets <= 2  # the day's marker, not two keys per symbol
    assert reader.stats.bulk_symbols == 200


async def test_a_symbol_the_source_knows_nothing_of_is_unknown_a_failed_lookup_is_not() -> None:
    source = MemoryBulkReferenceSource(universe(2), {"S0000": 5})
    cache = ReferenceCache(source, fakeredis.FakeAsyncRedis())
    await cache.get("S0000", DAY)
    assert not cache.unknown("S0000", DAY)
    assert not cache.unknown("ZZZZ", DAY)  # not looked up yet
    nothing = await cache.get("ZZZZ", DAY)
    assert (nothing.prev_day, nothing.free_float) == (None, None)
    assert cache.unknown("ZZZZ", DAY)
    failing = GatedSource()
    failing.fail = True
    failing.gate.set()
    down = ReferenceCache(failing)
    await down.get("AAA", DAY)
    assert not down.unknown("AAA", DAY)


# --- grouped-daily answers decoded from the body ---------------------------------------------

# 2026-03-03 00:00 ET (EST, UTC-5) in ms: a daily bar's stamp is the ET midnight of its day.
MARCH_3_MS = 1_772_514_000_000


def grouped_row(ticker: object, **fields: object) -> dict[str, object]:
    row: dict[str, object] = {"T": ticker, "o": 10, "h": 12.5, "l": 9.5, "c": 11, "v": 1000}
    row.update({"vw": 10.75, "t": MARCH_3_MS, "n": 7})
    row.update(fields)
    return row


def test_grouped_daily_bars_reads_every_ticker_with_its_et_day() -> None:
    body = msgspec.json.encode(
        {"status": "OK", "results": [grouped_row("AAA"), grouped_row("BBB", c=12, vw=None)]}
    )
    bars = grouped_daily_bars(body)
    assert bars == {
        "AAA": DailyBar(
            day=date(2026, 3, 3), open=10, high=12.5, low=9.5, close=11, volume=1000, vwap=10.75
        ),
        "BBB": DailyBar(day=date(2026, 3, 3), open=10, high=12.5, low=9.5, close=12, volume=1000),
    }
    # One millisecond before ET midnight is the day before: the day is ET's, not UTC's.
    earlier = grouped_daily_bars(
        msgspec.json.encode({"results": [grouped_row("A", t=MARCH_3_MS - 1)]})
    )
    assert earlier["A"].day == date(2026, 3, 2)


def test_grouped_daily_bars_skips_rows_that_are_not_bars() -> None:
    rows: list[object] = [
        grouped_row(None),
        grouped_row(""),
        grouped_row(7),
        grouped_row("NOPRICE", o=None),
        grouped_row("NOSTAMP", t="yesterday"),
        "not a row",
        grouped_row("GOOD"),
    ]
    assert list(grouped_daily_bars(msgspec.json.encode({"results": rows}))) == ["GOOD"]


@pytest.mark.parametrize("body", [b'{"status":"OK"}', b'{"results":null}', b'{"results":{}}'])
def test_grouped_daily_bars_without_a_results_list_is_no_rows(body: bytes) -> None:
    assert grouped_daily_bars(body) == {}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>502</html>", "not JSON"),
        (b'{"results": [', "not JSON"),
        (b"[1, 2]", "not a JSON object"),
    ],
)
def test_grouped_daily_bars_refuses_a_body_that_is_no_answer(body: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        grouped_daily_bars(body)


def test_daily_bars_by_ticker_agrees_with_the_row_conversion() -> None:
    rows = [grouped_row("A"), grouped_row("B", h=15, t=MARCH_3_MS + 86_400_000)]
    assert daily_bars_by_ticker(rows) == {str(row["T"]): daily_bar_from_agg(row) for row in rows}


class UnusableRedis:
    """A cache that fails every call as a Redis Cluster does between losing a master and
    promoting its replica (``SlotNotCoveredError`` is no ``RedisError``)."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0

    async def get(self, *args: object, **kwargs: object) -> bytes | None:
        self.calls += 1
        raise self.error

    async def set(self, *args: object, **kwargs: object) -> bool:
        self.calls += 1
        raise self.error

    async def eval(self, *args: object, **kwargs: object) -> object:
        self.calls += 1
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        SlotNotCoveredError("Slot 7 is not covered by the cluster."),
        RedisClusterException("No way to dispatch this command"),
        RedisConnectionError("refused"),
        OSError("network unreachable"),
    ],
    ids=type,
)
async def test_an_unusable_cache_is_counted_and_the_source_answers(error: Exception) -> None:
    source = MemoryReferenceSource({"AAA": bars(40, include_today=True)}, {"AAA": 5_000})
    redis = UnusableRedis(error)
    cache = ReferenceCache(source, redis)  # type: ignore[arg-type] # only these calls are made
    data = await cache.get("AAA", DAY)
    assert data.free_float == 5_000
    assert data.prev_day is not None
    assert redis.calls > 0
    assert cache.stats.errors == redis.calls


class HeldBulk(MemoryBulkReferenceSource):
    """A bulk source whose grouped-daily answer waits until released."""

    def __init__(self) -> None:
        super().__init__(universe(2), {})
        self.asked = asyncio.Event()
        self.release = asyncio.Event()

    async def grouped_daily(self, day: date) -> dict[str, DailyBar]:
        self.asked.set()
        await self.release.wait()
        return dict(await super().grouped_daily(day))


async def lookup_waiting_on_the_bulk_load() -> tuple[
    HeldBulk, ReferenceCache, asyncio.Task[ReferenceData]
]:
    """A first lookup of the day, waiting on the bulk load it started (which is held)."""
    source = HeldBulk()
    cache = ReferenceCache(source, fakeredis.FakeAsyncRedis())
    lookup = asyncio.create_task(cache.get("S0000", DAY))
    async with asyncio.timeout(5):
        await source.asked.wait()
    return source, cache, lookup


async def test_a_caller_cancelled_while_the_bulk_load_runs_is_cancelled() -> None:
    source, cache, lookup = await lookup_waiting_on_the_bulk_load()
    lookup.cancel()
    done, _ = await asyncio.wait({lookup}, timeout=5)
    # Not swallowed by the wait for the load (it was, once, and the lookup went on to ask
    # per symbol).
    assert lookup in done
    assert lookup.cancelled()
    source.release.set()  # the shielded load goes on, for whoever asks next
    data = await asyncio.wait_for(cache.get("S0001", DAY), 5)
    assert data.prev_day is not None
    assert cache.stats.bulk_loads == 1


async def test_a_cancelled_bulk_load_falls_back_to_the_per_symbol_lookups() -> None:
    source, _, lookup = await lookup_waiting_on_the_bulk_load()
    loads = [t for t in asyncio.all_tasks() if t.get_name().startswith("reference bulk")]
    assert len(loads) == 1
    loads[0].cancel()  # the load ends; its caller is not being stopped
    source.release.set()
    data = await asyncio.wait_for(lookup, 5)
    assert data.prev_day is not None  # answered by the per-symbol lookup
