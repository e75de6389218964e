"""The minute-bar series in WDC against the real Redis: one merge rule, any order.

Replicas, redeliveries and reordering write the same minutes of ``bars:{symbol}`` many times.
Whatever the order, duplication and batching of the writes, the stored series is a function of
the set of writes: the newest trading day only, one element per minute (the greatest version,
ties to the greater SHA-1), the newest ``max_len`` minutes, newest first. The script, the
emulator path and the in-memory store of the offline runner all give that very series.
"""

from __future__ import annotations

import dataclasses
import hashlib

import fakeredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from mdp_analyzers.replay import OfflineResult
from mdp_analyzers.typing import WidgetWrite
from mdp_cache.keys import FEED_MINUTE_BARS
from mdp_cache.series import merge_element
from mdp_cache.widgets import WidgetWriter

SMALL = dataclasses.replace(FEED_MINUTE_BARS, max_len=3)
Element = tuple[int, int, int, int]  # t, d, n, payload variant


def encode(element: Element) -> bytes:
    t, d, n, variant = element
    return f'{{"t":{t},"d":{d},"n":{n},"o":{variant},"c":1.5}}'.encode()


def expected(elements: list[Element], cap: int) -> list[bytes]:
    """The series the set of writes defines, stated without the merge code."""
    day = max(d for _, d, _, _ in elements)
    best: dict[int, tuple[int, bytes]] = {}
    for t, d, n, variant in elements:
        if d != day:
            continue
        payload = encode((t, d, n, variant))
        key = (n, hashlib.sha1(payload, usedforsecurity=False).hexdigest())
        old = best.get(t)
        if old is None or key > (old[0], hashlib.sha1(old[1], usedforsecurity=False).hexdigest()):
            best[t] = (n, payload)
    return [best[t][1] for t in sorted(best, reverse=True)][:cap]


elements_strategy = st.lists(
    st.tuples(
        st.sampled_from([60_000, 120_000, 180_000, 240_000, 300_000]),
        st.sampled_from([20261201, 20261202]),
        st.integers(0, 3),
        st.integers(0, 2),
    ),
    min_size=1,
    max_size=14,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(elements=elements_strategy, data=st.data())
async def test_the_series_is_a_function_of_the_set_of_writes(
    redis: Redis, elements: list[Element], data: st.DataObject
) -> None:
    # Duplicates and reordering: a shuffled copy with some writes repeated, cut in two flushes.
    repeated = data.draw(st.lists(st.sampled_from(elements), max_size=6))
    order = data.draw(st.permutations(elements + repeated))
    cut = data.draw(st.integers(0, len(order)))
    name = SMALL.name(symbol="SER")
    await redis.delete(name)
    items = [WidgetWrite(SMALL, name, encode(e)) for e in order]
    want = expected(elements, 3)
    emulated = fakeredis.FakeAsyncRedis()
    for store in (redis, emulated):
        writer = WidgetWriter(store)
        await writer.write(items[:cut])  # two flushes, as two replicas might send them
        await writer.write(items[cut:])
        assert await store.lrange(name, 0, -1) == want
    memory = OfflineResult()
    memory.record(items)
    assert memory.lists[name] == want
    model: list[bytes] = []
    for item in items:
        merge_element(model, item.payload, 3)
    assert model == want


async def test_only_stored_elements_are_published_and_the_ttl_is_set(redis: Redis) -> None:
    name = FEED_MINUTE_BARS.name(symbol="PUB")
    pubsub = redis.pubsub()
    await pubsub.subscribe(name)
    await pubsub.get_message(timeout=1)
    writer = WidgetWriter(redis)
    newer, older = encode((60_000, 20261202, 5, 0)), encode((60_000, 20261202, 4, 0))
    yesterday = encode((120_000, 20261201, 9, 0))
    await writer.write([WidgetWrite(FEED_MINUTE_BARS, name, p) for p in (newer, newer)])
    await writer.write([WidgetWrite(FEED_MINUTE_BARS, name, p) for p in (older, yesterday)])
    assert await redis.lrange(name, 0, -1) == [newer]
    assert 0 < await redis.ttl(name) <= FEED_MINUTE_BARS.ttl
    first = await pubsub.get_message(timeout=1)
    assert first is not None
    assert first["data"] == newer
    assert await pubsub.get_message(timeout=0.2) is None  # duplicate, older, yesterday: silent
    await pubsub.aclose()  # type: ignore[no-untyped-call]


async def test_an_element_without_its_merge_fields_is_refused(redis: Redis) -> None:
    name = FEED_MINUTE_BARS.name(symbol="BAD")
    await WidgetWriter(redis).write([WidgetWrite(FEED_MINUTE_BARS, name, b'{"t":1,"o":2}')])
    assert await redis.exists(name) == 0
    assert merge_element([], b'{"t":1,"o":2}', 3) is False


async def test_a_new_trading_day_replaces_the_series(redis: Redis) -> None:
    name = FEED_MINUTE_BARS.name(symbol="DAY")
    writer = WidgetWriter(redis)
    old = [encode((t, 20261201, 1, 0)) for t in (60_000, 120_000)]
    await writer.write([WidgetWrite(FEED_MINUTE_BARS, name, p) for p in old])
    fresh = encode((60_000, 20261202, 1, 0))
    await writer.write([WidgetWrite(FEED_MINUTE_BARS, name, fresh)])
    assert await redis.lrange(name, 0, -1) == [fresh]


async def test_a_flush_is_one_script_call_for_every_series(redis: Redis) -> None:
    writer = WidgetWriter(redis)
    items = [
        WidgetWrite(FEED_MINUTE_BARS, FEED_MINUTE_BARS.name(symbol=s), encode((60_000, 1, 1, 0)))
        for s in ("S1", "S2", "S3")
    ]
    assert await writer.write(items) == 1
    for item in items:
        assert await redis.lrange(item.name, 0, -1) == [item.payload]
