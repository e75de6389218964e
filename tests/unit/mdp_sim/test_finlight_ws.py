"""The Finlight websocket server and REST stub against the real ``finlight_client``."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from finlight_client import ApiConfig, FinlightApi, RawWebSocketClient, WebSocketClient
from finlight_client.models import (
    GetArticleByLinkParams,
    GetArticlesParams,
    GetArticlesWebSocketParams,
    GetRawArticlesWebSocketParams,
)

from mdp_sim.finlight_ws import FinlightRestServer, FinlightWsConfig, FinlightWsServer

KEY = "finlight-test-key"
WAIT = 10.0
_numbers = itertools.count(1)


@pytest.fixture(autouse=True)
def _loopback_without_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


_running: list[tuple[Any, asyncio.Task[None]]] = []


@pytest.fixture
async def server() -> AsyncIterator[FinlightWsServer]:
    async with FinlightWsServer(FinlightWsConfig(keys=frozenset({KEY}), close_timeout=0.5)) as srv:
        try:
            yield srv
        finally:
            # The client swallows cancellation while it tears a connection down, so a client
            # left running by a failed test is stopped through its flag before cancelling.
            while _running:
                await stop(*_running.pop())


def article(*tickers: str, source: str = "www.reuters.com", **extra: object) -> dict[str, object]:
    n = next(_numbers)
    body: dict[str, object] = {
        "link": f"https://news.example/sim/{n}",
        "title": f"Headline {n}",
        "publishDate": "2026-11-20T14:30:00Z",
        "source": source,
        "language": "en",
        "summary": "A simulated story.",
        "content": "The full simulated text.",
        "sentiment": "positive",
        "confidence": 0.9,
        "companies": [
            {"companyId": i + 1, "name": f"{t} Inc.", "ticker": t} for i, t in enumerate(tickers)
        ],
        "countries": ["US"],
        "categories": ["markets"],
    }
    body.update(extra)
    return body


class Articles:
    """Collects what the client's ``on_article`` receives."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._changed = asyncio.Event()

    def __call__(self, item: Any) -> None:
        self.items.append(item)
        self._changed.set()

    async def until(self, predicate: Callable[[list[Any]], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not predicate(self.items):
                self._changed.clear()
                await self._changed.wait()


def make_client(server: FinlightWsServer, *, takeover: bool = False, **options: Any) -> Any:
    options.setdefault("ping_interval", 60)
    options.setdefault("pong_timeout", 60)
    return WebSocketClient(
        ApiConfig(api_key=options.pop("key", KEY), wss_url=server.url),
        base_reconnect_delay=0.05,
        max_reconnect_delay=0.1,
        takeover=takeover,
        **options,
    )


def start(client: Any, on_article: Callable[[Any], None], **params: Any) -> asyncio.Task[None]:
    payload = GetArticlesWebSocketParams(**params)
    task = asyncio.create_task(client.connect(payload, on_article))
    _running.append((client, task))
    return task


async def stop(client: Any, task: asyncio.Task[None]) -> None:
    client.stop()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await asyncio.wait_for(task, WAIT)


async def admitted(server: FinlightWsServer, count: int = 1) -> None:
    await server.watch.wait_for(lambda: server.metrics.admitted >= count, WAIT)


async def test_admit_then_filtered_articles_without_content(server: FinlightWsServer) -> None:
    received = Articles()
    client = make_client(server)
    task = start(client, received, tickers=["AAPL"], language="en")
    await admitted(server)
    server.publish([article("MSFT"), article("AAPL", language="de"), article("AAPL")])
    await received.until(lambda items: len(items) == 1)
    got = received.items[0]
    assert got.companies[0].ticker == "AAPL"
    assert got.content is None  # only sent when the subscription is ``extended``
    assert got.sentiment == "positive"
    assert client.lease_id is not None
    assert client.lease_id.startswith("lease-")
    await stop(client, task)


async def test_extended_subscription_gets_content_and_source_filter(
    server: FinlightWsServer,
) -> None:
    received = Articles()
    client = make_client(server)
    task = start(client, received, extended=True, sources=["www.ft.com"], language="en")
    await admitted(server)
    server.publish([article("AAPL"), article("AAPL", source="www.ft.com")])
    await received.until(lambda items: len(items) == 1)
    assert received.items[0].source == "www.ft.com"
    assert received.items[0].content == "The full simulated text."
    await stop(client, task)


async def test_raw_channel_omits_enhanced_fields(server: FinlightWsServer) -> None:
    received = Articles()
    client = RawWebSocketClient(ApiConfig(api_key=KEY, wss_url=server.url))
    task = asyncio.create_task(client.connect(GetRawArticlesWebSocketParams(), received))
    _running.append((client, task))
    await admitted(server)
    server.publish([article("AAPL")])
    await received.until(lambda items: len(items) == 1)
    assert not hasattr(received.items[0], "companies")
    await stop(client, task)


async def test_json_ping_gets_pong(server: FinlightWsServer) -> None:
    client = make_client(server, ping_interval=1)
    task = start(client, Articles())
    await server.watch.wait_for(lambda: server.metrics.pongs >= 1, WAIT)
    assert server.metrics.pings >= 1
    await stop(client, task)


async def test_bad_key_is_refused_at_the_upgrade(server: FinlightWsServer) -> None:
    client = make_client(server, key="wrong")
    task = start(client, Articles())
    await server.watch.wait_for(lambda: server.metrics.rejected_keys >= 1, WAIT)
    assert server.metrics.admitted == 0
    await stop(client, task)


async def test_takeover_preempts_the_holder_which_stops(server: FinlightWsServer) -> None:
    first_client, second_client = make_client(server), make_client(server, takeover=True)
    first = start(first_client, Articles())
    await admitted(server)
    received = Articles()
    second = start(second_client, received)
    await asyncio.wait_for(first, WAIT)  # preempted: the client stops for good
    assert server.metrics.preempted == 1
    await admitted(server, 2)
    server.publish([article("AAPL")])
    await received.until(lambda items: len(items) == 1)
    await stop(second_client, second)


async def test_second_lease_without_takeover_gets_connection_limit(
    server: FinlightWsServer,
) -> None:
    holder = make_client(server)
    holder_task = start(holder, Articles())
    await admitted(server)
    newcomer = make_client(server)
    newcomer_task = start(newcomer, Articles())
    await server.watch.wait_for(lambda: server.metrics.limit_rejections == 1, WAIT)
    assert server.lease_count == 1
    await stop(newcomer, newcomer_task)
    await stop(holder, holder_task)


async def test_close_1008_stops_the_client_for_good(server: FinlightWsServer) -> None:
    client = make_client(server)
    task = start(client, Articles())
    await admitted(server)
    assert await server.close(1008) == 1
    await asyncio.wait_for(task, WAIT)
    assert server.metrics.admitted == 1


@pytest.mark.parametrize("fault", ["close-1011", "admin-kick"])
async def test_recoverable_faults_make_the_client_reconnect(
    server: FinlightWsServer, fault: str
) -> None:
    client = make_client(server)
    task = start(client, Articles())
    await admitted(server)
    if fault == "close-1011":
        assert await server.close(1011) == 1
    else:
        assert await server.admin_kick(retry_after_ms=50) == 1
    await admitted(server, 2)
    await stop(client, task)


async def test_invalid_articles_are_dropped_by_the_client(server: FinlightWsServer) -> None:
    received = Articles()
    client = make_client(server)
    task = start(client, received)
    await admitted(server)
    server.faults.finlight.invalid_articles = True
    server.publish([article("BAD")])
    server.faults.finlight.invalid_articles = False
    server.publish([article("GOOD")])
    await received.until(lambda items: len(items) == 1)
    assert received.items[0].companies[0].ticker == "GOOD"
    assert server.metrics.invalid_articles_sent == 1
    await stop(client, task)


async def test_missing_pongs_make_the_client_reconnect(server: FinlightWsServer) -> None:
    # The client's watchdog wakes every 5 s, so this is the slowest test here (about 6 s).
    server.faults.finlight.no_pong = True
    client = make_client(server, ping_interval=1, pong_timeout=1)
    task = start(client, Articles())
    await admitted(server)
    await server.watch.wait_for(lambda: server.metrics.admitted >= 2, 15.0)
    assert server.metrics.pongs == 0
    await stop(client, task)


async def test_rest_stub_serves_published_articles(server: FinlightWsServer) -> None:
    server.publish([article("AAPL"), article("MSFT", source="www.ft.com")])
    rest = FinlightRestServer(frozenset({KEY}), server)
    await rest.start()
    try:
        api = FinlightApi(ApiConfig(api_key=KEY, base_url=rest.base_url, wss_url=server.url))
        found = await asyncio.to_thread(
            api.articles.fetch_articles,
            GetArticlesParams(tickers=["AAPL"], includeEntities=True),
        )
        assert [a.companies[0].ticker for a in found.articles] == ["AAPL"]
        assert found.articles[0].content is None
        sources = await asyncio.to_thread(api.sources.get_sources)
        assert sorted(s.domain for s in sources) == ["www.ft.com", "www.reuters.com"]
        link = str(found.articles[0].link)
        one = await asyncio.to_thread(
            api.articles.fetch_article_by_link,
            GetArticleByLinkParams(link=link, includeContent=True),
        )
        assert one.content == "The full simulated text."
    finally:
        await rest.stop()
