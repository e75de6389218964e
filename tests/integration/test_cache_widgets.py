"""The WDC writer against the real Redis: shapes, TTLs, channels (its Lua needs cmsgpack).

Versioned writes: whatever the order, duplication and batching of the writes of one name, the
stored document is the newest (ties: the greater SHA-1), exactly as the emulator path and the
in-memory store decide, and a write that loses is neither stored nor published.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any, cast

import fakeredis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from mdp_analyzers.replay import OfflineResult
from mdp_analyzers.typing import WidgetWrite
from mdp_cache.client import close_redis, create_redis
from mdp_cache.keys import FEED_ALERTS_HOD, FEED_NEWS_LATEST, FEED_QUOTE, KEY_WIDGET_VERSION
from mdp_cache.widgets import WidgetWriter, queue_widget_write


@pytest.fixture
async def redis(redis_db_url: str) -> AsyncIterator[Redis]:
    client = create_redis(redis_db_url)
    yield client
    await close_redis(client)


Write = WidgetWrite


async def test_value_and_list_feeds_follow_their_shape(redis: Redis) -> None:
    pubsub = redis.pubsub()
    await pubsub.subscribe(FEED_QUOTE.name(symbol="AAA"))
    await pubsub.get_message(timeout=1)
    writer = WidgetWriter(redis)
    items = [Write(FEED_NEWS_LATEST, FEED_NEWS_LATEST.name(), f"{i}".encode()) for i in range(3)]
    items.append(Write(FEED_QUOTE, FEED_QUOTE.name(symbol="AAA"), b'{"p":1}'))
    await writer.write(items)
    assert await redis.get("quote:AAA") == b'{"p":1}'
    assert 0 < await redis.ttl("quote:AAA") <= FEED_QUOTE.ttl
    assert await redis.lrange(FEED_NEWS_LATEST.name(), 0, -1) == [b"2", b"1", b"0"]
    assert 0 < await redis.ttl(FEED_NEWS_LATEST.name()) <= FEED_NEWS_LATEST.ttl
    message = await pubsub.get_message(timeout=1)
    assert message is not None
    assert message["data"] == b'{"p":1}'
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
            Write(FEED_NEWS_LATEST, FEED_NEWS_LATEST.name(), b"once"),
            Write(FEED_QUOTE, FEED_QUOTE.name(symbol="D"), b"{}", version=1),
        ]
    )
    assert await redis.lrange(FEED_NEWS_LATEST.name(), 0, -1) == [b"once"]
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


async def test_both_scripts_become_known_at_once(redis: Redis) -> None:
    """A flush and a composition share one writer: while its scripts load, none is known."""
    writer = WidgetWriter(redis)
    real = redis.script_load
    seen: list[tuple[str | None, str | None]] = []

    async def script_load(script: str) -> Any:
        seen.append((writer._sha, writer._versioned_sha))
        return await real(script)

    redis.script_load = script_load  # type: ignore[method-assign,assignment]
    name = FEED_QUOTE.name(symbol="AAA")
    await writer.write([WidgetWrite(FEED_QUOTE, name, b'{"v":1}', version=1)])
    assert seen == [(None, None), (None, None)]
    assert await redis.get(name) == b'{"v":1}'


async def test_alert_lists_are_stored_in_event_time_order_whatever_the_arrival(
    redis: Redis,
) -> None:
    """A late alert lands where its time puts it (newest first), not on top."""
    writer = WidgetWriter(redis)
    name = FEED_ALERTS_HOD.name()

    def alert(at_ms: int) -> WidgetWrite:
        return WidgetWrite(FEED_ALERTS_HOD, name, b'{"symbol":"A","as_of_ms":%d}' % at_ms)

    arrivals = [5, 9, 7, 1, 9, 12, 3, 10, 40, 2]
    for at in arrivals:
        await writer.write([alert(at)])
    items = cast("list[bytes]", await redis.lrange(name, 0, -1))
    stored = [int(item.split(b'"as_of_ms":')[1].rstrip(b"}")) for item in items]
    assert stored == sorted(arrivals, reverse=True)
    # Past the cap, the oldest fall off the end whatever their arrival.
    cap = FEED_ALERTS_HOD.max_len or 0
    for at in range(100, 100 + cap):
        await writer.write([alert(at)])
    await writer.write([alert(50)])  # older than everything kept: dropped by the cap
    kept = await redis.lrange(name, 0, -1)
    assert len(kept) == cap
    assert kept[-1] == b'{"symbol":"A","as_of_ms":100}'
