"""The Python client example in docs/reference/wds-protocol.md runs against a real WDS."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from mdp_core.settings import Secret, load
from mdp_core.token import issue_token
from mdp_wds import WdsSettings, WidgetServer

DOC = Path(__file__).resolve().parents[2] / "docs" / "reference" / "wds-protocol.md"
SECRET = "doc-secret"


def example_source() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) == 1, "the protocol page has exactly one Python example"
    return str(blocks[0])


@pytest.fixture
async def server(redis_db_url: str) -> AsyncIterator[WidgetServer]:
    settings = load(
        WdsSettings,
        environ={},
        host="127.0.0.1",
        port=0,
        wdc_redis_url=redis_db_url,
        token_secret=Secret(SECRET),
    )
    async with WidgetServer(settings) as running:
        assert await running.hub.wait_connected(5)
        yield running


async def test_the_documented_client_receives_snapshots_and_updates(
    server: WidgetServer, redis_db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    client = aioredis.Redis.from_url(redis_db_url)
    try:
        await client.set("quote:AAPL", b'{"symbol": "AAPL", "price": 1.5}')
        namespace: dict[str, Any] = {"__name__": "wds_doc_example"}
        exec(compile(example_source(), str(DOC), "exec"), namespace)  # noqa: S102 - our own doc
        token = issue_token(SECRET, "doc", ["quote:*"], 60, time.time())
        follow = namespace["follow"](server.url, token, ["quote:*", "news:latest"], 2)
        import asyncio

        task = asyncio.ensure_future(follow)
        # A snapshot is read only once Redis has confirmed the subscriptions: publishing any
        # earlier could be lost (Redis delivers to active subscriptions only).
        while server.stats.snapshots_out == 0:
            assert not task.done(), task
            await asyncio.sleep(0.01)
        await client.publish("quote:MSFT", b'{"symbol": "MSFT"}')
        messages = await asyncio.wait_for(task, 5)
    finally:
        await client.aclose()
    assert messages == [
        {"op": "snapshot", "feed": "quote:AAPL", "data": {"symbol": "AAPL", "price": 1.5}},
        {"op": "update", "feed": "quote:MSFT", "data": {"symbol": "MSFT"}},
    ]
    assert "refused: forbidden_feed" in capsys.readouterr().out
