"""MDC reference data: cache-aside over a reference source, with real negative caching.

Per symbol and trading day the cache holds two records: the *daily* record (previous completed
day's bar and the 30-day average volume of completed days, from one daily-bars request) and the
free float. The lookup of each:

1. ``GET`` the MDC key. A stored JSON ``null`` is a *negative* entry and counts as a hit: the
   source had nothing, and we do not ask again until it expires (``REF_NEGATIVE_TTL``).
2. Within the process, one in-flight future per key: concurrent callers share one fetch.
3. Across processes, a lock key (``SET NX PX``). The winner fetches and writes; losers poll
   the value briefly, then read it (or, past the wait, fetch on their own rather than hang).
4. The source is async (a sync client must be wrapped with ``asyncio.to_thread``). A failure
   degrades the record to "unknown" parts, is counted, and is retried only after a pause; it
   never raises to the caller, so an event is never dropped for want of reference data.

**Bulk loads.** A source that can answer for the whole market at once
(:class:`BulkReferenceSource`: the grouped-daily endpoint, one request per day, and the free
floats in pages) is asked once per trading day and process group before any per-symbol lookup:
the first :meth:`ReferenceCache.get` of a day starts the load, every lookup of that day waits
for it (bounded), and one process (``KEY_REF_LOCK``) writes every symbol's records to MDC and
marks the day done (``KEY_REF_BULK``, holding the symbols covered), so the others only read,
and read them all at once (pipelines of a thousand ``GET``): one ``GET`` per symbol and record,
10,000 lookups at once through a pool of a few connections, waited longer than the pool's
timeout under load; each such error fell through to a per-symbol request to the vendor, which
timed out in turn and left the row without a previous close until a retry half a minute later.
About 45 requests (one per calendar day of the look-back) replace two per symbol. Symbols the
bulk load did not cover fall back to the per-symbol lookups.

**Time-of-day volume profiles.** With ``profile_days`` above 0 and a source that also serves
intraday aggregates (:class:`SlotVolumeSource`: Massive
``/v2/aggs/ticker/{T}/range/5/minute/{from}/{to}``) each symbol gets a third record per trading
day, its :class:`~mdp_cache.volume_profile.VolumeProfile` over the last ``profile_days``
trading days (one paginated request per symbol and day, cached in MDC as
``KEY_REF_TOD_VOLUME`` with the same lock, negative entries and retry pause), asked for on its
own (:meth:`ReferenceCache.volume_profile`) because it is the slow part: a previous close
never waits for it. There is no market-wide endpoint, so no bulk load: each symbol's is
fetched on its first lookup.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Final, Protocol, TypeVar, runtime_checkable

import msgspec
from redis.asyncio import Redis

from mdp_cache.client import REDIS_ERRORS
from mdp_cache.keys import (
    KEY_REF_BULK,
    KEY_REF_FREE_FLOAT,
    KEY_REF_LOCK,
    KEY_REF_SNAPSHOT,
    KEY_REF_TOD_VOLUME,
    REF_NEGATIVE_TTL,
)
from mdp_cache.records import DailyBar, ReferenceData
from mdp_cache.volume_profile import VolumeProfile, build_profile, lookback_start
from mdp_core.clock import ET, from_ns

__all__ = [
    "BulkReferenceSource",
    "MemoryBulkReferenceSource",
    "MemoryReferenceSource",
    "MemorySlotReferenceSource",
    "ReferenceCache",
    "ReferenceSource",
    "ReferenceStats",
    "SlotVolumeSource",
    "daily_bar_from_agg",
    "daily_bars_by_ticker",
    "grouped_daily_bars",
]

T = TypeVar("T")

LOOKBACK_DAYS: Final = 45
"""Calendar days of daily bars requested: enough for 30 completed trading days."""

PROFILE_DAYS: Final = 20
"""Trading days a time-of-day volume profile averages by default."""

_RELEASE_LUA: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@runtime_checkable
class ReferenceSource(Protocol):
    """**Protocol:** where reference data comes from (Massive REST, the simulator, a dict)."""

    async def daily_bars(self, symbol: str, start: date, end: date) -> Sequence[DailyBar]:
        """Completed daily bars of ``symbol`` for days in ``[start, end]`` (any order)."""
        ...

    async def free_float(self, symbol: str) -> int | None:
        """The free float in shares, or None when the source has none."""
        ...


@runtime_checkable
class BulkReferenceSource(ReferenceSource, Protocol):
    """**Protocol:** a reference source that can also answer for the whole market at once."""

    async def grouped_daily(self, day: date) -> Mapping[str, DailyBar]:
        """Every symbol's completed daily bar of ``day`` (empty for a day without trading)."""
        ...

    async def free_floats(self) -> Mapping[str, int]:
        """Every symbol's free float in shares (symbols without one are left out)."""
        ...


@runtime_checkable
class SlotVolumeSource(Protocol):
    """**Protocol:** a source of intraday volume, for time-of-day volume profiles.

    Bars no longer than a slot (5 minutes) and aligned to 04:00 ET: Massive's 5-minute
    aggregates, five times fewer rows than its minute aggregates for the same profile.
    """

    async def slot_volumes(self, symbol: str, start: date, end: date) -> Sequence[tuple[int, int]]:
        """``(start_ms, volume)`` of every bar of ``symbol`` on days in ``[start, end]``."""
        ...


class MemoryReferenceSource:
    """A reference source over in-memory data, for the demo, notebooks and tests.

    Args:
        bars: Daily bars per symbol.
        floats: Free float per symbol.
    """

    def __init__(
        self,
        bars: Mapping[str, Sequence[DailyBar]] | None = None,
        floats: Mapping[str, int] | None = None,
    ) -> None:
        self.bars = dict(bars or {})
        self.floats = dict(floats or {})
        self.calls = 0

    async def daily_bars(self, symbol: str, start: date, end: date) -> Sequence[DailyBar]:
        """The stored bars of ``symbol`` within ``[start, end]``."""
        self.calls += 1
        return [bar for bar in self.bars.get(symbol, ()) if start <= bar.day <= end]

    async def free_float(self, symbol: str) -> int | None:
        """The stored free float of ``symbol``."""
        self.calls += 1
        return self.floats.get(symbol)


class MemoryBulkReferenceSource(MemoryReferenceSource):
    """:class:`MemoryReferenceSource` that also answers for the whole market at once."""

    async def grouped_daily(self, day: date) -> Mapping[str, DailyBar]:
        """Every stored symbol's bar of ``day``."""
        self.calls += 1
        return {symbol: bar for symbol, bars in self.bars.items() for bar in bars if bar.day == day}

    async def free_floats(self) -> Mapping[str, int]:
        """Every stored free float."""
        self.calls += 1
        return dict(self.floats)


class MemorySlotReferenceSource(MemoryBulkReferenceSource):
    """:class:`MemoryBulkReferenceSource` that also serves minute bars (volume profiles).

    Args:
        bars: Daily bars per symbol.
        floats: Free float per symbol.
        minutes: Minute bars ``(start_ms, volume)`` per symbol.
    """

    def __init__(
        self,
        bars: Mapping[str, Sequence[DailyBar]] | None = None,
        floats: Mapping[str, int] | None = None,
        minutes: Mapping[str, Sequence[tuple[int, int]]] | None = None,
    ) -> None:
        super().__init__(bars, floats)
        self.minutes = dict(minutes or {})
        #: The symbols whose minute bars were asked for, in order.
        self.slot_asked: list[str] = []

    async def slot_volumes(self, symbol: str, start: date, end: date) -> Sequence[tuple[int, int]]:
        """The stored bars of ``symbol`` starting on days in ``[start, end]`` (ET)."""
        self.slot_asked.append(symbol)
        first = _et_midnight_ms(start)
        last = _et_midnight_ms(end + timedelta(days=1))
        return [bar for bar in self.minutes.get(symbol, ()) if first <= bar[0] < last]


def daily_bar_from_agg(row: Mapping[str, object]) -> DailyBar | None:
    """A :class:`DailyBar` from a Massive daily ``Agg`` row (``o h l c v vw``, ``t`` in ms).

    Returns None for a row missing a price, volume or time (a vendor gap is not a bar).
    """
    try:
        stamp = row["t"]
        if not isinstance(stamp, int | float):
            return None
        vwap = row.get("vw")
        return DailyBar(
            day=_et_day_of_ms(int(stamp)),
            open=float(row["o"]),  # type: ignore[arg-type]
            high=float(row["h"]),  # type: ignore[arg-type]
            low=float(row["l"]),  # type: ignore[arg-type]
            close=float(row["c"]),  # type: ignore[arg-type]
            volume=int(row["v"]),  # type: ignore[call-overload]
            vwap=float(vwap) if isinstance(vwap, int | float) else None,
        )
    except (KeyError, TypeError, ValueError):
        return None


@functools.lru_cache(maxsize=1024)
def _et_day_of_ms(stamp_ms: int) -> date:
    """The ET date of a bar stamp; a grouped-daily answer repeats one stamp 10,000 times."""
    return from_ns(stamp_ms * 1_000_000, ET).date()


def grouped_daily_bars(payload: bytes) -> dict[str, DailyBar]:
    """Every ticker's :class:`DailyBar` from the body of a Massive grouped-daily answer.

    ``{"results": [{"T": ticker, "o": ..., "t": ms, ...}, ...]}``; a missing ``results`` is
    no rows. Decoding the body directly is about 5x faster than the SDK's models (0.8 s of CPU
    per day at 10,000 symbols, 45 days per bulk load, all of it competing with the event loop
    for the interpreter).

    Raises:
        ValueError: The body is not a JSON object (a vendor error page, a cut answer).
    """
    try:
        answer = _JSON_DECODE(payload)
    except msgspec.DecodeError as error:
        raise ValueError(f"grouped-daily answer is not JSON: {error}") from None
    if not isinstance(answer, dict):
        raise ValueError("grouped-daily answer is not a JSON object")
    rows = answer.get("results")
    return daily_bars_by_ticker(rows if isinstance(rows, list) else ())


def daily_bars_by_ticker(rows: Iterable[object]) -> dict[str, DailyBar]:
    """Grouped-daily rows (``T`` the ticker) as bars by ticker.

    Rows without a ticker, or that :func:`daily_bar_from_agg` refuses, are skipped.
    """
    found: dict[str, DailyBar] = {}
    for row in rows:
        if not isinstance(row, Mapping):
            continue
        ticker = row.get("T")
        if isinstance(ticker, str) and ticker and (bar := daily_bar_from_agg(row)) is not None:
            found[ticker] = bar
    return found


_JSON_DECODE: Final = msgspec.json.Decoder().decode


def _et_midnight_ms(day: date) -> int:
    return int(datetime.combine(day, datetime.min.time(), tzinfo=ET).timestamp() * 1000)


class _DailyRecord(msgspec.Struct, frozen=True, gc=False):
    prev_day: DailyBar | None
    avg_volume: float | None


@dataclass(slots=True)
class ReferenceStats:
    """Counters of the cache (exported as metrics by the service)."""

    hits: int = 0
    negative_hits: int = 0
    misses: int = 0
    fetches: int = 0
    errors: int = 0
    lock_waits: int = 0
    bulk_loads: int = 0
    bulk_symbols: int = 0
    bulk_errors: int = 0
    bulk_retries: int = 0
    fetch_seconds: list[float] = field(default_factory=list)


_ENCODER: Final = msgspec.json.Encoder()
_DAILY_DECODER: Final = msgspec.json.Decoder(_DailyRecord | None)
_SYMBOLS_DECODER: Final = msgspec.json.Decoder(list[str])
_PIPELINE_CHUNK: Final = 1_000
_FLOAT_DECODER: Final = msgspec.json.Decoder(int | None)
_PROFILE_DECODER: Final = msgspec.json.Decoder(VolumeProfile | None)


class ReferenceCache:
    """Cache-aside reference data over MDC (or process memory only when ``redis`` is None).

    Args:
        source: Where misses are fetched.
        redis: The MDC client; None keeps everything in process memory.
        lock_wait_seconds: How long a process that lost the fetch lock polls for the winner's value.
        retry_after_seconds: Pause before asking the source again after it failed for a key.
        fetch_timeout_seconds: Upper bound of one source call.
        bulk_wait_seconds: How long lookups of a day wait for its bulk load (then they go on alone).
        bulk_concurrency: Grouped-daily requests in flight during a bulk load.
        bulk_timeout_seconds: Upper bound of one bulk request (a whole market's answer is large and
            slow to build: the per-symbol ``fetch_timeout_seconds`` would time it out under load).
        bulk_attempts: Tries of each bulk request before the load gives up (a single slow or
            failed day would otherwise fail the whole load and send every symbol to the
            per-symbol lookups, which is what left rows without a previous close).
        profile_days: Trading days a time-of-day volume profile averages (N); 0 (the default)
            asks for no profiles.
    """

    def __init__(
        self,
        source: ReferenceSource,
        redis: Redis | None = None,
        *,
        lock_wait_seconds: float = 2.0,
        retry_after_seconds: float = 30.0,
        fetch_timeout_seconds: float = 10.0,
        bulk_wait_seconds: float = 60.0,
        bulk_concurrency: int = 4,
        bulk_timeout_seconds: float = 30.0,
        bulk_attempts: int = 3,
        profile_days: int = 0,
    ) -> None:
        self._source = source
        self._bulk_timeout_seconds = bulk_timeout_seconds
        self._bulk_attempts = max(1, bulk_attempts)
        self._profile_days = max(0, profile_days)
        self._bulk_wait_seconds = bulk_wait_seconds
        self._bulk_concurrency = max(1, bulk_concurrency)
        self._bulk: dict[date, asyncio.Task[None]] = {}
        self._redis = redis
        self._lock_wait_seconds = lock_wait_seconds
        self._retry_after_seconds = retry_after_seconds
        self._fetch_timeout_seconds = fetch_timeout_seconds
        self._inflight: dict[str, asyncio.Future[bytes | None]] = {}
        self._local: dict[str, bytes] = {}
        self._failed_until: dict[str, float] = {}
        self.stats = ReferenceStats()

    async def get(self, symbol: str, trading_day: date) -> ReferenceData:
        """Reference data of ``symbol`` for ``trading_day``; unknown parts are None."""
        await self.preload(trading_day)
        daily_raw, float_raw = await asyncio.gather(
            self._lookup(
                KEY_REF_SNAPSHOT.name(day=trading_day.isoformat(), symbol=symbol),
                "daily",
                symbol,
                lambda: self._fetch_daily(symbol, trading_day),
                KEY_REF_SNAPSHOT.ttl,
            ),
            self._lookup(
                KEY_REF_FREE_FLOAT.of(symbol),
                "free_float",
                symbol,
                lambda: self._fetch_float(symbol),
                KEY_REF_FREE_FLOAT.ttl,
            ),
        )
        daily = _decode(_DAILY_DECODER, daily_raw)
        free_float = _decode(_FLOAT_DECODER, float_raw)
        return ReferenceData(
            symbol=symbol,
            trading_day=trading_day,
            prev_day=daily.prev_day if daily is not None else None,
            avg_volume=daily.avg_volume if daily is not None else None,
            free_float=free_float,
        )

    def unknown(self, symbol: str, trading_day: date) -> bool:
        """Whether the source answered for ``symbol`` and knew nothing: no daily bar, no float.

        True only after a :meth:`get` whose both lookups came back as negative entries (a
        failed lookup is not knowledge). The bulk universe is yesterday's trading symbols, so a
        symbol listed today is "unknown" too: callers count it, they should not drop it.
        """
        daily = self._local.get(KEY_REF_SNAPSHOT.name(day=trading_day.isoformat(), symbol=symbol))
        shares = self._local.get(KEY_REF_FREE_FLOAT.of(symbol))
        return daily == b"null" and shares == b"null"

    @property
    def has_profiles(self) -> bool:
        """Whether profiles are asked for and the source serves intraday volume.

        Otherwise :meth:`volume_profile` is None.
        """
        return self._profile_days > 0 and isinstance(self._source, SlotVolumeSource)

    async def volume_profile(self, symbol: str, trading_day: date) -> VolumeProfile | None:
        """The time-of-day volume profile of ``symbol`` for ``trading_day`` (None: unknown).

        Never raises: a failing source gives None, retried only after a pause.
        """
        await self.preload(trading_day)
        profile = _decode(_PROFILE_DECODER, await self._profile(symbol, trading_day))
        return profile if profile is not None and profile.days > 0 else None

    # --- time-of-day volume profiles --------------------------------------------------

    async def _profile(self, symbol: str, trading_day: date) -> bytes | None:
        source = self._source
        if not self.has_profiles or not isinstance(source, SlotVolumeSource):
            return None
        return await self._lookup(
            KEY_REF_TOD_VOLUME.name(day=trading_day.isoformat(), symbol=symbol),
            "tod_volume",
            symbol,
            lambda: self._fetch_profile(source, symbol, trading_day),
            KEY_REF_TOD_VOLUME.ttl,
        )

    async def _fetch_profile(
        self, source: SlotVolumeSource, symbol: str, trading_day: date
    ) -> bytes:
        minutes = await source.slot_volumes(
            symbol,
            lookback_start(trading_day, self._profile_days),
            trading_day - timedelta(days=1),
        )
        profile = build_profile(trading_day, minutes, days=self._profile_days)
        return b"null" if profile.days == 0 else _ENCODER.encode(profile)

    # --- bulk loads ---------------------------------------------------------------------

    async def preload(self, trading_day: date) -> None:
        """Load the whole universe's reference of ``trading_day`` in bulk, once (see above).

        Returns when the load is done, failed, or has taken ``bulk_wait_seconds``; never raises
        but the caller's own cancellation (the load goes on for the other callers). A source
        without bulk answers makes this a no-op.
        """
        if not isinstance(self._source, BulkReferenceSource):
            return
        task = self._bulk.get(trading_day)
        if task is None:
            for day in [d for d in self._bulk if d < trading_day]:
                del self._bulk[day]  # yesterday's load is done with
            task = self._bulk[trading_day] = asyncio.create_task(
                self._load_day(self._source, trading_day), name=f"reference bulk {trading_day}"
            )
        try:
            async with asyncio.timeout(self._bulk_wait_seconds):
                await asyncio.shield(task)
        except TimeoutError:
            pass
        except asyncio.CancelledError:
            caller = asyncio.current_task()
            if caller is not None and caller.cancelling():
                raise  # the caller is being stopped: not the load's end, not ours to swallow
            # The load itself was cancelled: the per-symbol lookups go on without it.

    async def _load_day(self, source: BulkReferenceSource, trading_day: date) -> None:
        marker = KEY_REF_BULK.name(day=trading_day.isoformat())
        try:
            covered = await self._read(marker)
            if covered is not None:
                await self._adopt(trading_day, covered)  # another process loaded the day
                return
            lock_key = KEY_REF_LOCK.name(kind="bulk", symbol=trading_day.isoformat())
            token = secrets.token_hex(8)
            if not await self._acquire(lock_key, token):
                covered = await self._await_marker(marker)
                if covered is not None:
                    await self._adopt(trading_day, covered)
                return
            try:
                symbols = await self._load_bulk(source, trading_day)
                await self._write(
                    marker, _ENCODER.encode(sorted(symbols)), KEY_REF_BULK.ttl or REF_NEGATIVE_TTL
                )
            finally:
                await self._release(lock_key, token)
        except Exception:
            # A failed bulk load leaves the per-symbol lookups to do the work, as before.
            self.stats.bulk_errors += 1

    async def _await_marker(self, marker: str) -> bytes | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._bulk_wait_seconds
        while loop.time() < deadline:
            covered = await self._read(marker)
            if covered is not None:
                return covered
            await asyncio.sleep(0.25)
        return None

    async def _adopt(self, trading_day: date, covered: bytes) -> None:
        """Read the records another process's bulk load wrote, all at once, into memory.

        A marker without a symbol list (an older writer) leaves the lookups to read MDC one
        by one, as before.
        """
        try:
            symbols = _SYMBOLS_DECODER.decode(covered)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        day_text = trading_day.isoformat()
        keys = [KEY_REF_SNAPSHOT.name(day=day_text, symbol=symbol) for symbol in symbols]
        keys += [KEY_REF_FREE_FLOAT.of(symbol) for symbol in symbols]
        found = await self._read_many(keys)
        self._local.update(found)
        self.stats.bulk_symbols += len(symbols)

    async def _read_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        """``GET`` every key in pipelines of a thousand; the ones that hold a value."""
        if self._redis is None:
            return {}
        found: dict[str, bytes] = {}
        for start in range(0, len(keys), _PIPELINE_CHUNK):
            chunk = keys[start : start + _PIPELINE_CHUNK]
            pipe = self._redis.pipeline(transaction=False)
            for key in chunk:
                pipe.get(key)
            for key, value in zip(chunk, await pipe.execute(), strict=True):
                if value is not None:
                    found[key] = value.encode() if isinstance(value, str) else value
        return found

    async def _load_bulk(self, source: BulkReferenceSource, trading_day: date) -> set[str]:
        """Fetch every day of the look-back and the floats; write each symbol's records.

        Returns the symbols whose records it wrote (the day's marker lists them).
        """
        semaphore = asyncio.Semaphore(self._bulk_concurrency)

        async def day_bars(day: date) -> Mapping[str, DailyBar]:
            async with semaphore:
                return await self._bulk_call(lambda: source.grouped_daily(day))

        # The same calendar days a per-symbol lookup asks for, so both give the same record.
        days = [trading_day - timedelta(days=n) for n in range(1, LOOKBACK_DAYS + 1)]
        grouped, floats = await asyncio.gather(
            asyncio.gather(*(day_bars(day) for day in days)),
            self._bulk_call(source.free_floats),
        )
        bars: dict[str, list[DailyBar]] = {}
        for answer in grouped:
            for symbol, bar in answer.items():
                bars.setdefault(symbol, []).append(bar)
        day_text = trading_day.isoformat()
        daily: dict[str, bytes] = {}
        for symbol, symbol_bars in bars.items():
            record = ReferenceData.from_bars(symbol, trading_day, symbol_bars, None)
            if record.prev_day is not None:
                daily[KEY_REF_SNAPSHOT.name(day=day_text, symbol=symbol)] = _ENCODER.encode(
                    _DailyRecord(record.prev_day, record.avg_volume)
                )
        shares = {
            KEY_REF_FREE_FLOAT.of(symbol): _ENCODER.encode(int(count))
            for symbol, count in floats.items()
            if count > 0
        }
        # Symbols that trade but have no float: a negative entry, as a per-symbol lookup writes.
        none = {
            key: b"null" for symbol in bars if (key := KEY_REF_FREE_FLOAT.of(symbol)) not in shares
        }
        await self._write_many(daily, KEY_REF_SNAPSHOT.ttl)
        await self._write_many(shares, KEY_REF_FREE_FLOAT.ttl)
        await self._write_many(none, REF_NEGATIVE_TTL)
        for records in (daily, shares, none):
            self._local.update(records)
        self.stats.bulk_loads += 1
        self.stats.bulk_symbols += len(bars)
        return set(bars) | set(floats)

    async def _bulk_call(self, call: Callable[[], Awaitable[T]]) -> T:
        """One bulk request, bounded by ``bulk_timeout_seconds`` and tried ``bulk_attempts`` times.

        Every day of the look-back must be answered: a load missing the most recent day would
        take the day before it for the previous close. So the last failure propagates.
        """
        for _ in range(self._bulk_attempts - 1):
            try:
                async with asyncio.timeout(self._bulk_timeout_seconds):
                    return await call()
            except Exception:
                self.stats.bulk_retries += 1
        async with asyncio.timeout(self._bulk_timeout_seconds):
            return await call()

    async def _write_many(self, records: Mapping[str, bytes], ttl: int | None) -> None:
        """SET every record with ``ttl`` in pipelines of a thousand (errors propagate)."""
        if self._redis is None or not records:
            return
        items = list(records.items())
        for start in range(0, len(items), _PIPELINE_CHUNK):
            pipe = self._redis.pipeline(transaction=False)
            for key, value in items[start : start + _PIPELINE_CHUNK]:
                pipe.set(key, value, ex=ttl)
            await pipe.execute()

    # --- per-symbol lookups ---------------------------------------------------------------

    async def _fetch_daily(self, symbol: str, trading_day: date) -> bytes:
        bars = await self._source.daily_bars(
            symbol, trading_day - timedelta(days=LOOKBACK_DAYS), trading_day - timedelta(days=1)
        )
        record = ReferenceData.from_bars(symbol, trading_day, list(bars), None)
        if record.prev_day is None:
            return b"null"
        return _ENCODER.encode(_DailyRecord(record.prev_day, record.avg_volume))

    async def _fetch_float(self, symbol: str) -> bytes:
        value = await self._source.free_float(symbol)
        return b"null" if value is None or value <= 0 else _ENCODER.encode(int(value))

    async def _lookup(
        self,
        key: str,
        kind: str,
        symbol: str,
        fetch: Callable[[], Awaitable[bytes]],
        ttl: int | None,
    ) -> bytes | None:
        local = self._local.get(key)
        if local is not None:
            self.stats.hits += 1
            return local
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await self._resolve(key, kind, symbol, fetch, ttl or REF_NEGATIVE_TTL)
            if value is not None:
                self._local[key] = value
            future.set_result(value)
            return value
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters get it through shield
            raise
        finally:
            del self._inflight[key]

    async def _resolve(
        self,
        key: str,
        kind: str,
        symbol: str,
        fetch: Callable[[], Awaitable[bytes]],
        ttl: int,
    ) -> bytes | None:
        cached = await self._read(key)
        if cached is not None:
            self._count_hit(cached)
            return cached
        self.stats.misses += 1
        loop = asyncio.get_running_loop()
        if self._failed_until.get(key, 0.0) > loop.time():
            return None
        lock_key = KEY_REF_LOCK.name(kind=kind, symbol=symbol)
        token = secrets.token_hex(8)
        owner = await self._acquire(lock_key, token)
        if not owner:
            self.stats.lock_waits += 1
            deadline = loop.time() + self._lock_wait_seconds
            while loop.time() < deadline:
                await asyncio.sleep(0.05)
                cached = await self._read(key)
                if cached is not None:
                    self._count_hit(cached)
                    return cached
        try:
            cached = await self._read(key) if owner else None
            if cached is not None:
                self._count_hit(cached)
                return cached
            value = await self._fetch(key, fetch)
            if value is not None:
                await self._write(key, value, REF_NEGATIVE_TTL if value == b"null" else ttl)
            return value
        finally:
            if owner:
                await self._release(lock_key, token)

    def _count_hit(self, value: bytes) -> None:
        self.stats.hits += 1
        if value == b"null":
            self.stats.negative_hits += 1

    async def _fetch(self, key: str, fetch: Callable[[], Awaitable[bytes]]) -> bytes | None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.stats.fetches += 1
        try:
            async with asyncio.timeout(self._fetch_timeout_seconds):
                value = await fetch()
        except Exception:
            self.stats.errors += 1
            self._failed_until[key] = loop.time() + self._retry_after_seconds
            return None
        self.stats.fetch_seconds.append(loop.time() - started)
        del self.stats.fetch_seconds[:-1000]
        return value

    async def _read(self, key: str) -> bytes | None:
        if self._redis is None:
            return None
        try:
            value = await self._redis.get(key)
        except REDIS_ERRORS:
            self.stats.errors += 1
            return None
        return value.encode() if isinstance(value, str) else value

    async def _write(self, key: str, value: bytes, ttl: int) -> None:
        if self._redis is None:
            return
        try:
            await self._redis.set(key, value, ex=ttl)
        except REDIS_ERRORS:
            self.stats.errors += 1

    async def _acquire(self, lock_key: str, token: str) -> bool:
        if self._redis is None:
            return True
        try:
            ttl_ms = (KEY_REF_LOCK.ttl or 30) * 1000
            return bool(await self._redis.set(lock_key, token, nx=True, px=ttl_ms))
        except REDIS_ERRORS:
            self.stats.errors += 1
            return True  # no Redis, no cross-process coordination: fetch on our own

    async def _release(self, lock_key: str, token: str) -> None:
        if self._redis is None:
            return
        try:
            await self._redis.eval(_RELEASE_LUA, 1, lock_key, token)
        except REDIS_ERRORS:
            self.stats.errors += 1

    def forget_day(self, trading_day: date) -> None:
        """Drop process-local entries of days before ``trading_day`` (memory hygiene)."""
        stale = [key for key in self._local if _day_of(key) != trading_day]
        for key in stale:
            del self._local[key]


def _day_of(key: str) -> date | None:
    for part in key.split(":"):
        if len(part) == 10 and part[4] == "-" and part[7] == "-":
            try:
                return date.fromisoformat(part)
            except ValueError:
                return None
    return None


def _decode(decoder: msgspec.json.Decoder[T], raw: bytes | None) -> T | None:
    if raw is None:
        return None
    try:
        return decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None
