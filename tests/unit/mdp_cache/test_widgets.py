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
