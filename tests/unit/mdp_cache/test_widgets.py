from __future__ import annotations

import fakeredis

from mdp_cache.keys import FEED_QUOTE
from mdp_cache.widgets import WidgetWriter


class Write:
    feed = FEED_QUOTE
    name = "quote:AAA"
    payload = b"{}"
    publish = True
    version = None


async def test_the_widget_writer_falls_back_to_plain_commands_without_cmsgpack() -> None:
    redis = fakeredis.FakeAsyncRedis()
    await WidgetWriter(redis).write([Write()])
    assert await redis.get("quote:AAA") == b"{}"
    assert 0 < await redis.ttl("quote:AAA") <= FEED_QUOTE.ttl


# --------------------------------------------------------------------------------------------
# Pinned by mutation testing (issue 21): "newer wins" on the Python path (plain commands), as
# the Lua path is pinned in tests/integration/test_cache_widgets.py.

import asyncio  # noqa: E402 - grouped with the tests that use it
import hashlib  # noqa: E402
from dataclasses import dataclass  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from mdp_cache.keys import KEY_WIDGET_VERSION, Feed  # noqa: E402
from mdp_cache.versions import supersedes  # noqa: E402


@dataclass(frozen=True)
class VersionedWrite:
    feed: Feed
    name: str
    payload: bytes
    publish: bool
    version: int | None


def _wins(version: int, payload: bytes, stored: tuple[int, bytes] | None) -> bool:
    """The documented rule: a higher version wins; at equal versions the greater SHA-1 wins."""
    if stored is None:
        return True
    if version != stored[0]:
        return version > stored[0]
    return hashlib.sha1(payload).hexdigest() > hashlib.sha1(stored[1]).hexdigest()  # noqa: S324


_writes = st.lists(
    st.tuples(
        st.sampled_from(["AAA", "BBB"]),
        st.integers(min_value=0, max_value=3),
        st.sampled_from([b'{"p":1}', b'{"p":2}', b'{"p":3}']),
    ),
    min_size=1,
    max_size=10,
)


@settings(deadline=None)
@given(_writes, st.integers(min_value=0, max_value=10))
def test_the_plain_path_stores_and_publishes_only_newer_writes(
    writes: list[tuple[str, int, bytes]], cut: int
) -> None:
    async def scenario() -> None:
        server = fakeredis.FakeServer()
        redis = fakeredis.FakeAsyncRedis(server=server)
        listener = fakeredis.FakeAsyncRedis(server=server)
        pubsub = listener.pubsub()
        await pubsub.psubscribe("quote:*")
        await pubsub.get_message(timeout=1)
        writer = WidgetWriter(redis)
        items = [
            VersionedWrite(FEED_QUOTE, f"quote:{s}", p, publish=True, version=v)
            for s, v, p in writes
        ]
        await writer.write(items[:cut])
        await writer.write(items[cut:])
        stored: dict[str, tuple[int, bytes]] = {}
        published: list[tuple[str, bytes]] = []
        superseded = 0
        for item in items:
            assert item.version is not None
            if _wins(item.version, item.payload, stored.get(item.name)):
                stored[item.name] = (item.version, item.payload)
                published.append((item.name, item.payload))
            else:
                superseded += 1
        for name, (version, payload) in stored.items():
            assert await redis.get(name) == payload
            assert await redis.get(KEY_WIDGET_VERSION.name(feed=name)) == str(version).encode()
            assert 0 < await redis.ttl(KEY_WIDGET_VERSION.name(feed=name)) <= FEED_QUOTE.ttl
        assert writer.superseded == superseded
        # A marker published last: everything before it has been delivered in order.
        await redis.publish("quote:END", b"end")
        received: list[tuple[str, bytes]] = []
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
            assert message is not None, (received, published)
            if message["data"] == b"end":
                break
            received.append((message["channel"].decode(), message["data"]))
        assert received == published
        await pubsub.aclose()  # type: ignore[no-untyped-call]

    asyncio.run(scenario())


@given(
    st.integers(min_value=0, max_value=3),
    st.binary(max_size=8),
    st.none() | st.tuples(st.integers(min_value=0, max_value=3), st.binary(max_size=8)),
)
def test_supersedes_is_the_documented_rule(
    version: int, payload: bytes, stored: tuple[int, bytes] | None
) -> None:
    assert supersedes(version, payload, stored) == _wins(version, payload, stored)


def test_a_stored_version_without_a_document_is_superseded_by_an_equal_one() -> None:
    assert supersedes(3, b"x", (3, None))
    assert not supersedes(2, b"x", (3, None))


def test_the_plain_path_sends_what_it_says_and_keeps_list_arrival_order() -> None:
    from mdp_cache.keys import FEED_ALERTS_HOD

    async def scenario() -> None:
        redis = fakeredis.FakeAsyncRedis()
        pubsub = redis.pubsub()
        await pubsub.subscribe("alerts:hod")
        await pubsub.get_message(timeout=1)
        writer = WidgetWriter(redis)
        late, early = b'{"as_of_ms":2}', b'{"as_of_ms":1}'
        sent = await writer.write(
            [
                VersionedWrite(FEED_ALERTS_HOD, "alerts:hod", late, publish=False, version=None),
                VersionedWrite(FEED_ALERTS_HOD, "alerts:hod", early, publish=False, version=None),
                VersionedWrite(FEED_QUOTE, "quote:AAA", b'{"p":1}', publish=True, version=5),
            ]
        )
        # Each list element: LPUSH, LTRIM, EXPIRE; the value: SET, PUBLISH, version SET.
        assert sent == 3 + 3 + 3
        assert await redis.lrange("alerts:hod", 0, -1) == [early, late]  # arrival order
        await redis.publish("alerts:hod", b"end")
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
        assert message is not None
        assert message["data"] == b"end"  # the unpublished writes were not published
        await pubsub.aclose()  # type: ignore[no-untyped-call]

    asyncio.run(scenario())


def test_an_unversioned_write_does_not_end_the_version_checks_of_its_batch() -> None:
    async def scenario() -> None:
        redis = fakeredis.FakeAsyncRedis()
        writer = WidgetWriter(redis)
        await writer.write([VersionedWrite(FEED_QUOTE, "quote:AAA", b'{"v":5}', True, 5)])
        await writer.write(
            [
                VersionedWrite(FEED_QUOTE, "quote:BBB", b'{"plain":1}', True, None),
                VersionedWrite(FEED_QUOTE, "quote:AAA", b'{"v":4}', True, 4),
            ]
        )
        assert await redis.get("quote:AAA") == b'{"v":5}'
        assert writer.superseded == 1

    asyncio.run(scenario())


def test_each_name_is_compared_with_its_own_stored_document() -> None:
    payloads = [b'{"p":1}', b'{"p":2}', b'{"p":3}', b'{"p":4}']
    low, high = sorted(payloads, key=lambda p: hashlib.sha1(p).hexdigest())[::3]  # noqa: S324

    async def scenario() -> None:
        redis = fakeredis.FakeAsyncRedis()
        writer = WidgetWriter(redis)
        await writer.write(
            [
                VersionedWrite(FEED_QUOTE, "quote:AAA", high, True, 7),
                VersionedWrite(FEED_QUOTE, "quote:BBB", low, True, 7),
            ]
        )
        # Same version: AAA keeps its greater digest, BBB takes the greater one.
        await writer.write(
            [
                VersionedWrite(FEED_QUOTE, "quote:AAA", low, True, 7),
                VersionedWrite(FEED_QUOTE, "quote:BBB", high, True, 7),
            ]
        )
        assert await redis.get("quote:AAA") == high
        assert await redis.get("quote:BBB") == high

    asyncio.run(scenario())


# --------------------------------------------------------------------------------------------
# Series on the Python path (an emulator without Lua cmsgpack): merged by
# mdp_cache.series.merge_element, published only when stored, other writes untouched.

from mdp_cache.keys import FEED_MINUTE_BARS  # noqa: E402


@dataclass(frozen=True)
class BarWrite:
    name: str
    payload: bytes
    feed: Feed = FEED_MINUTE_BARS
    publish: bool = True
    version: int | None = None


def test_the_plain_path_merges_series_and_publishes_what_it_stored() -> None:
    async def run() -> tuple[object, list[bytes], object, int]:
        redis = fakeredis.FakeAsyncRedis()
        pubsub = redis.pubsub()
        await pubsub.subscribe("bars:AAA")
        await pubsub.get_message(timeout=1)
        newer, older = b'{"t":60,"d":1,"n":2,"c":1}', b'{"t":60,"d":1,"n":1,"c":9}'
        later = b'{"t":120,"d":1,"n":1,"c":3}'
        writer = WidgetWriter(redis)
        await writer.write([BarWrite("bars:AAA", newer), Write()])
        await writer.write([BarWrite("bars:AAA", older), BarWrite("bars:AAA", later)])
        got: list[bytes] = []
        while (message := await pubsub.get_message(timeout=0.2)) is not None:
            got.append(message["data"])
        stored = await redis.lrange("bars:AAA", 0, -1)
        return stored, got, await redis.get("quote:AAA"), await redis.ttl("bars:AAA")

    stored, published, quote, ttl = asyncio.run(run())
    assert stored == [b'{"t":120,"d":1,"n":1,"c":3}', b'{"t":60,"d":1,"n":2,"c":1}']
    assert published == [b'{"t":60,"d":1,"n":2,"c":1}', b'{"t":120,"d":1,"n":1,"c":3}']
    assert quote == b"{}"  # the value write of the same batch still lands
    assert 0 < ttl <= FEED_MINUTE_BARS.ttl


def test_the_plain_path_publishes_the_series_after_the_other_documents() -> None:
    """As the scripts do: a flush's quote records are not written behind its minute bars."""

    async def run() -> list[str]:
        redis = fakeredis.FakeAsyncRedis()
        pubsub = redis.pubsub()
        await pubsub.subscribe("bars:AAA", "quote:AAA")
        for _ in range(2):
            await pubsub.get_message(timeout=1)
        writer = WidgetWriter(redis)
        await writer.write([BarWrite("bars:AAA", b'{"t":60,"d":1,"n":1,"c":1}'), Write()])
        channels: list[str] = []
        for _ in range(2):
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
            assert message is not None
            channels.append(message["channel"].decode())
        return channels

    assert asyncio.run(run()) == ["quote:AAA", "bars:AAA"]
