"""The WDC writer against the real Redis: shapes, TTLs, channels (its Lua needs cmsgpack).

Versioned writes: whatever the order, duplication and batching of the writes of one name, the
stored document is the newest (ties: the greater SHA-1), exactly as the emulator path and the
in-memory store decide, and a write that loses is neither stored nor published.
"""

from __future__ import annotations

import hashlib
import random
import re
import string
from typing import Any, cast

import fakeredis
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from mdp_analyzers.replay import OfflineResult
from mdp_analyzers.typing import WidgetWrite
from mdp_cache.keys import (
    FEED_ALERTS_HOD,
    FEED_LATEST_AGGREGATE,
    FEED_MINUTE_BARS,
    FEED_NEWS_TICKER,
    FEED_QUOTE,
    KEY_WIDGET_VERSION,
    Feed,
)
from mdp_cache.widgets import WidgetWriter, queue_ordered_list_write, queue_widget_write

Write = WidgetWrite
#: A list feed without an order: elements pushed as they come (the news feeds were, before
#: they were ordered by publication time).
PLAIN_LIST = Feed(
    template="test:plain", shape="list", ttl=3600, max_len=1_000, owner="test", payload="-"
)
#: A value feed without a version, of the tests' own.
PLAIN_VALUE = Feed(
    template="test:value:{symbol}", shape="value", ttl=3600, owner="test", payload="-"
)


async def test_value_and_list_feeds_follow_their_shape(redis: Redis) -> None:
    pubsub = redis.pubsub()
    await pubsub.subscribe(FEED_QUOTE.name(symbol="AAA"))
    await pubsub.get_message(timeout=1)
    writer = WidgetWriter(redis)
    items = [Write(PLAIN_LIST, PLAIN_LIST.name(), f"{i}".encode()) for i in range(3)]
    items.append(Write(FEED_QUOTE, FEED_QUOTE.name(symbol="AAA"), b'{"p":1}'))
    await writer.write(items)
    assert await redis.get("quote:AAA") == b'{"p":1}'
    assert 0 < await redis.ttl("quote:AAA") <= FEED_QUOTE.ttl
    assert await redis.lrange(PLAIN_LIST.name(), 0, -1) == [b"2", b"1", b"0"]
    assert 0 < await redis.ttl(PLAIN_LIST.name()) <= PLAIN_LIST.ttl
    message = await pubsub.get_message(timeout=1)
    assert message is not None
    assert message["data"] == b'{"p":1}'
    await pubsub.aclose()  # type: ignore[no-untyped-call]


async def test_versioned_documents_are_published_first_in_their_order(redis: Redis) -> None:
    """A flush's quote records (versioned, first in its batch) go out before its other docs.

    A burst flush at 10,000 symbols holds a thousand rows' quote records, latest aggregates
    and minute bars; clients follow the quote records, so they lead the pipeline. Names of
    this test's own: pub/sub spans the server's databases and tests run side by side.
    """
    symbol = "".join(random.choices(string.ascii_uppercase, k=8))
    quote, latest = FEED_QUOTE.name(symbol=symbol), FEED_LATEST_AGGREGATE.name(symbol=symbol)
    bars, plain = FEED_MINUTE_BARS.name(symbol=symbol), PLAIN_VALUE.name(symbol=symbol)
    pubsub = redis.pubsub()
    await pubsub.subscribe(quote, latest, bars, plain)
    for _ in range(4):
        assert await pubsub.get_message(timeout=1) is not None  # the confirmations
    minute = b'{"t":1772632800000,"d":20260304,"n":1,"o":1}'
    await WidgetWriter(redis).write(
        [
            Write(FEED_MINUTE_BARS, bars, minute),
            Write(PLAIN_VALUE, plain, b'{"p":1}'),
            Write(FEED_QUOTE, quote, b'{"q":1}', version=3),
            Write(FEED_LATEST_AGGREGATE, latest, b'{"a":1}', version=3),
        ]
    )
    published = []
    for _ in range(4):
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
        assert message is not None
        published.append(message["channel"].decode())
    assert published == [quote, latest, plain, bars]
    await pubsub.aclose()  # type: ignore[no-untyped-call]


async def test_a_forgotten_script_is_reloaded(redis: Redis) -> None:
    writer = WidgetWriter(redis)
    writer._sha = writer._versioned_sha = "0" * 40
    await writer.write([Write(FEED_QUOTE, FEED_QUOTE.name(symbol="B"), b"{}")])
    assert await redis.get("quote:B") == b"{}"
    name = FEED_QUOTE.name(symbol="C")
    writer._sha = writer._versioned_sha = "0" * 40
    await writer.write([Write(FEED_QUOTE, name, b"{}", version=7)])
    assert await redis.get(KEY_WIDGET_VERSION.name(feed=name)) == b"7"
    # A batch mixing list and value writes: only the script calls are sent again, so the
    # list element is pushed once.
    writer._sha = writer._versioned_sha = "0" * 40
    await writer.write(
        [
            Write(PLAIN_LIST, PLAIN_LIST.name(), b"once"),
            Write(FEED_QUOTE, FEED_QUOTE.name(symbol="D"), b"{}", version=1),
        ]
    )
    assert await redis.lrange(PLAIN_LIST.name(), 0, -1) == [b"once"]
    assert await redis.get(FEED_QUOTE.name(symbol="D")) == b"{}"


def test_a_name_outside_the_feed_is_refused() -> None:
    pipe = fakeredis.FakeAsyncRedis().pipeline()
    with pytest.raises(ValueError, match="not a name of feed"):
        queue_widget_write(pipe, FEED_QUOTE, "news:latest", b"{}")


def winner(writes: list[tuple[int, bytes]]) -> tuple[int, bytes]:
    """The straightforward answer: highest version, then greatest SHA-1 of the payload."""
    return max(writes, key=lambda w: (w[0], hashlib.sha1(w[1], usedforsecurity=False).digest()))


version_writes = st.lists(
    st.tuples(st.integers(0, 5), st.sampled_from([b'{"a":1}', b'{"b":2}', b'{"c":3}'])),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(writes=version_writes, cut=st.integers(0, 12))
async def test_versioned_writes_keep_the_newest_in_any_order(
    redis: Redis, writes: list[tuple[int, bytes]], cut: int
) -> None:
    name = FEED_QUOTE.name(symbol="VER")
    await redis.delete(name, KEY_WIDGET_VERSION.name(feed=name))
    items = [Write(FEED_QUOTE, name, payload, version=version) for version, payload in writes]
    emulated = fakeredis.FakeAsyncRedis()
    memory = OfflineResult()
    for writer_redis in (redis, emulated):
        writer = WidgetWriter(writer_redis)
        await writer.write(items[:cut])  # two flushes, as two replicas might send them
        await writer.write(items[cut:])
        expected_version, expected_payload = winner(writes)
        assert await writer_redis.get(name) == expected_payload
        assert (
            await writer_redis.get(KEY_WIDGET_VERSION.name(feed=name))
            == str(expected_version).encode()
        )
        assert 0 < await writer_redis.ttl(KEY_WIDGET_VERSION.name(feed=name)) <= FEED_QUOTE.ttl
    memory.record(items[:cut])
    memory.record(items[cut:])
    assert memory.values[name] == winner(writes)[1]


async def test_a_superseded_write_is_neither_stored_nor_published(redis: Redis) -> None:
    name = FEED_QUOTE.name(symbol="OLD")
    pubsub = redis.pubsub()
    await pubsub.subscribe(name)
    await pubsub.get_message(timeout=1)
    writer = WidgetWriter(redis)
    await writer.write([Write(FEED_QUOTE, name, b'{"v":2}', version=2)])
    await writer.write([Write(FEED_QUOTE, name, b'{"v":1}', version=1)])
    await writer.write([Write(FEED_QUOTE, name, b'{"v":2}', version=2)])  # a duplicate
    await writer.write([Write(FEED_QUOTE, name, b'{"v":3}', version=3)])
    assert writer.superseded == 2
    published: list[bytes] = []
    while (message := await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)) and (
        len(published) < 3
    ):
        published.append(message["data"])
        if message["data"] == b'{"v":3}':
            break
    assert published == [b'{"v":2}', b'{"v":3}']
    assert await redis.get(name) == b'{"v":3}'
    await pubsub.aclose()  # type: ignore[no-untyped-call]


async def test_every_script_becomes_known_at_once(redis: Redis) -> None:
    """A flush and a composition share one writer: while its scripts load, none is known."""
    writer = WidgetWriter(redis)
    real = redis.script_load
    seen: list[tuple[str | None, str | None, str | None]] = []

    async def script_load(script: str) -> Any:
        seen.append((writer._sha, writer._versioned_sha, writer._series_sha))
        return await real(script)

    redis.script_load = script_load  # type: ignore[method-assign,assignment]
    name = FEED_QUOTE.name(symbol="AAA")
    await writer.write([WidgetWrite(FEED_QUOTE, name, b'{"v":1}', version=1)])
    assert seen == [(None, None, None)] * 3  # plain, versioned and series scripts
    assert await redis.get(name) == b'{"v":1}'


async def test_alert_lists_are_stored_in_event_time_order_whatever_the_arrival(
    redis: Redis,
) -> None:
    """A late alert lands where its time puts it (newest first), not on top."""
    writer = WidgetWriter(redis)
    name = FEED_ALERTS_HOD.name()

    def alert(at_ms: int, symbol: str = "A") -> WidgetWrite:
        payload = b'{"symbol":"%s","as_of_ms":%d}' % (symbol.encode(), at_ms)
        return WidgetWrite(FEED_ALERTS_HOD, name, payload)

    arrivals = [5, 9, 7, 1, 9, 12, 3, 10, 40, 2]
    for n, at in enumerate(arrivals):  # two alerts at 9, of different symbols
        await writer.write([alert(at, "B" if n == 4 else "A")])
    items = cast("list[bytes]", await redis.lrange(name, 0, -1))
    stored = [int(item.split(b'"as_of_ms":')[1].rstrip(b"}")) for item in items]
    assert stored == sorted(arrivals, reverse=True)
    await writer.write([alert(9, "B"), alert(9)])  # sent again: already there
    assert await redis.lrange(name, 0, -1) == items
    # Past the cap, the oldest fall off the end whatever their arrival.
    cap = FEED_ALERTS_HOD.max_len or 0
    for at in range(100, 100 + cap):
        await writer.write([alert(at)])
    await writer.write([alert(50)])  # older than everything kept: dropped by the cap
    kept = await redis.lrange(name, 0, -1)
    assert len(kept) == cap
    assert kept[-1] == b'{"symbol":"A","as_of_ms":100}'


# --- ordered lists: a batch is the same as its pushes one at a time ---------------------------

SMALL_ALERTS = Feed(
    template="alerts:test",
    shape="list",
    ttl=60,
    max_len=6,
    owner="tests",
    payload="an element with or without an as_of_ms",
    order_by="as_of_ms",
)


def _time_of(element: bytes) -> int | None:
    found = re.search(rb'"as_of_ms":(-?\d+)', element)
    return int(found.group(1)) if found else None


def pushed_one_at_a_time(
    stored: list[bytes], items: list[bytes], cap: int, entered: list[bytes] | None = None
) -> list[bytes]:
    """The rule written out: before the first element not newer (or timeless), cut to cap;
    not at all when the same bytes are among the elements of its time that follow.
    ``entered`` collects the elements that entered the list (those published)."""
    out = list(stored)
    for item in items:
        t = _time_of(item)
        at = 0
        if t is not None:
            window = out[:cap]
            at = next(
                (i for i, e in enumerate(window) if (o := _time_of(e)) is None or o <= t),
                len(out),
            )
            same_time = []
            for other in out[at:cap]:
                if _time_of(other) != t:
                    break
                same_time.append(other)
            if at >= cap or item in same_time:
                continue
        if entered is not None:
            entered.append(item)
        out.insert(at, item)
        out = out[:cap]
    return out


element = st.builds(
    lambda t, tag: (b'{"as_of_ms":%d,"n":%d}' % (t, tag)) if t is not None else b'{"n":%d}' % tag,
    st.one_of(st.none(), st.integers(-3, 12)),
    st.integers(0, 10**6),
)


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    stored=st.lists(element, max_size=8, unique=True),
    batches=st.lists(st.lists(element, min_size=1, max_size=9, unique=True), max_size=4),
)
async def test_a_batch_of_ordered_pushes_equals_its_pushes_one_at_a_time(
    redis: Redis, stored: list[bytes], batches: list[list[bytes]]
) -> None:
    name = SMALL_ALERTS.name()
    cap = SMALL_ALERTS.max_len or 0
    await redis.delete(name)
    if stored:
        await redis.rpush(name, *stored)
    expected = list(stored)
    for batch in batches:
        pipe = redis.pipeline(transaction=False)
        assert queue_ordered_list_write(pipe, SMALL_ALERTS, name, batch, publish=False) == 1
        await pipe.execute()
        expected = pushed_one_at_a_time(expected, batch, cap)
        assert await redis.lrange(name, 0, -1) == expected
    if batches:
        assert 0 < await redis.ttl(name) <= SMALL_ALERTS.ttl


timed = st.builds(
    lambda t, tag: b'{"as_of_ms":%d,"n":%d}' % (t, tag), st.integers(0, 6), st.integers(0, 3)
)


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    stored=st.lists(timed, max_size=3, unique=True),
    batch=st.lists(timed, min_size=1, max_size=6, unique=True),
)
async def test_an_ordered_push_sent_again_changes_nothing_and_publishes_nothing(
    redis: Redis, stored: list[bytes], batch: list[bytes]
) -> None:
    """A retried write (lost reply, a cluster pipeline sent again) is idempotent while the
    list holds it (here: the cap is never passed).

    Few distinct times and tags, so a batch often repeats what the list holds already.
    """
    name = SMALL_ALERTS.name()
    cap = SMALL_ALERTS.max_len or 0
    await redis.delete(name)
    stored = sorted(stored, key=lambda e: _time_of(e) or 0, reverse=True)  # as the rule makes
    assume(len(set(stored) | set(batch)) <= cap)  # past it, one pushed out may come back
    if stored:
        await redis.rpush(name, *stored)
    entered: list[bytes] = []
    expected = pushed_one_at_a_time(stored, batch, cap, entered)
    async with redis.pubsub() as pubsub:
        await pubsub.subscribe(name)
        await pubsub.get_message(timeout=1.0)  # the subscribe confirmation
        for _ in range(2):
            pipe = redis.pipeline(transaction=False)
            queue_ordered_list_write(pipe, SMALL_ALERTS, name, batch)
            await pipe.execute()
            assert await redis.lrange(name, 0, -1) == expected
        await redis.publish(name, b"end")  # published after both: the end of what they sent
        got = []
        while message := await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0):
            if message["data"] == b"end":
                break
            got.append(message["data"])
    assert got == entered  # each element that entered, once, in arrival order


async def test_a_flush_of_alerts_is_one_script_call_and_each_is_published(redis: Redis) -> None:
    writer = WidgetWriter(redis)
    name = FEED_ALERTS_HOD.name()
    times = [7, 3, 9, 3, 1]
    writes = [
        WidgetWrite(FEED_ALERTS_HOD, name, b'{"symbol":"S%d","as_of_ms":%d}' % (n, t))
        for n, t in enumerate(times)
    ]
    async with redis.pubsub() as pubsub:
        await pubsub.subscribe(name)
        await pubsub.get_message(timeout=1.0)  # the subscribe confirmation
        assert await writer.write(writes) == 1  # one script, which publishes too
        got = [
            message["data"]
            for _ in writes
            if (message := await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0))
        ]
    assert got == [w.payload for w in writes]
    stored = await redis.lrange(name, 0, -1)
    # Newest first; of the two at 3 the later arrival (S3) is first, as pushed one by one.
    assert stored == [
        writes[2].payload,
        writes[0].payload,
        writes[3].payload,
        writes[1].payload,
        writes[4].payload,
    ]


def test_ordered_writes_refuse_a_feed_without_order_and_mismatched_flags() -> None:
    pipe = fakeredis.FakeAsyncRedis().pipeline(transaction=False)
    with pytest.raises(ValueError, match="not a list ordered"):
        queue_ordered_list_write(pipe, PLAIN_LIST, PLAIN_LIST.name(), [b"{}"])
    with pytest.raises(ValueError, match="2 publish flags for 1 payloads"):
        queue_ordered_list_write(
            pipe, SMALL_ALERTS, SMALL_ALERTS.name(), [b"{}"], publish=[True, False]
        )
    assert queue_ordered_list_write(pipe, SMALL_ALERTS, SMALL_ALERTS.name(), []) == 0
    assert len(pipe.command_stack) == 0


async def test_news_lists_are_ordered_by_publication_and_a_resent_item_is_kept_once(
    redis: Redis,
) -> None:
    """A pipeline sent again whole (a cluster node failed mid-write) must not double news."""
    writer = WidgetWriter(redis)
    name = FEED_NEWS_TICKER.name(symbol="AAPL")
    items = [
        b'{"link":"https://n.test/2","published_ms":2000}',
        b'{"link":"https://n.test/1","published_ms":1000}',
        b'{"link":"https://n.test/3","published_ms":3000}',
    ]
    for _ in range(2):
        await writer.write([Write(FEED_NEWS_TICKER, name, item) for item in items])
    assert await redis.lrange(name, 0, -1) == [items[2], items[0], items[1]]
