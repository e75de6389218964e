"""The WDC writer against the real Redis: shapes, TTLs, channels (its Lua needs cmsgpack)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import fakeredis
import pytest
from redis.asyncio import Redis

from mdp_cache.client import close_redis, create_redis
from mdp_cache.keys import FEED_NEWS_LATEST, FEED_QUOTE
from mdp_cache.widgets import WidgetWriter, queue_widget_write


@pytest.fixture
async def redis(redis_db_url: str) -> AsyncIterator[Redis]:
    client = create_redis(redis_db_url)
    yield client
    await close_redis(client)


class Write:
    def __init__(self, feed: object, name: str, payload: bytes, publish: bool = True) -> None:
        self.feed = feed
        self.name = name
        self.payload = payload
        self.publish = publish


async def test_value_and_list_feeds_follow_their_shape(redis: Redis) -> None:
    pubsub = redis.pubsub()
    await pubsub.subscribe(FEED_QUOTE.name(symbol="AAA"))
    await pubsub.get_message(timeout=1)
    writer = WidgetWriter(redis)
    items = [Write(FEED_NEWS_LATEST, FEED_NEWS_LATEST.name(), f"{i}".encode()) for i in range(3)]
    items.append(Write(FEED_QUOTE, FEED_QUOTE.name(symbol="AAA"), b'{"p":1}'))
    await writer.write(items)  # type: ignore[arg-type]
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
    writer._sha = "0" * 40
    await writer.write([Write(FEED_QUOTE, FEED_QUOTE.name(symbol="B"), b"{}")])  # type: ignore[list-item]
    assert await redis.get("quote:B") == b"{}"


def test_a_name_outside_the_feed_is_refused() -> None:
    pipe = fakeredis.FakeAsyncRedis().pipeline()
    with pytest.raises(ValueError, match="not a name of feed"):
        queue_widget_write(pipe, FEED_QUOTE, "news:latest", b"{}")
