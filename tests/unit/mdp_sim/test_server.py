"""``SimServers``: the market driven through every server, seen by the real clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import time
from typing import Any

import aiohttp
import pytest
from finlight_client import ApiConfig
from finlight_client import WebSocketClient as FinlightClient
from finlight_client.models import GetArticlesWebSocketParams
from massive import RESTClient, WebSocketClient

from mdp_core.clock import NS_PER_SECOND, ManualClock
from mdp_sim.scenario import ScenarioConfig
from mdp_sim.server import SimConfig, SimServers

WAIT = 15.0
SCENARIO = ScenarioConfig(seed=5, symbols=10, start=time(9, 30), news_per_hour=3_600.0)


@pytest.fixture(autouse=True)
def _loopback_without_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
async def unpaced() -> AsyncIterator[SimServers]:
    async with SimServers(SimConfig(scenario=SCENARIO, speed=None, control_port=0)) as sim:
        yield sim


class Batches:
    def __init__(self) -> None:
        self.items: list[Any] = []
        self.changed = asyncio.Event()

    async def __call__(self, batch: list[Any]) -> None:
        self.items.extend(batch)
        self.changed.set()

    async def at_least(self, count: int) -> None:
        async with asyncio.timeout(WAIT):
            while len(self.items) < count:
                self.changed.clear()
                await self.changed.wait()


async def close_massive(client: WebSocketClient, task: asyncio.Task[None]) -> None:
    # Cancelling is not enough: under a busy stream the client's ``wait_for(recv, 1)`` can
    # swallow the cancellation (Python 3.11), so close the socket and let connect() return.
    await client.close()
    await asyncio.wait_for(task, WAIT)


def massive_client(sim: SimServers, topics: list[str]) -> WebSocketClient:
    return WebSocketClient(
        api_key=sim.api_key, feed=sim.massive_feed, secure=False, subscriptions=topics
    )


async def test_backpressure_paced_stream_reaches_the_official_client(unpaced: SimServers) -> None:
    received = Batches()
    client = massive_client(unpaced, ["T.*", "Q.*", "A.*"])
    task = asyncio.create_task(client.connect(received, max_size=None, proxy=None))
    await received.at_least(3_000)
    kinds = {type(m).__name__ for m in received.items}
    assert {"EquityTrade", "EquityQuote"} <= kinds
    assert {m.symbol for m in received.items} <= set(unpaced.market.profiles)
    assert unpaced.broadcaster_error is None
    await close_massive(client, task)


async def test_rest_and_stream_come_from_the_same_market(unpaced: SimServers) -> None:
    symbol = sorted(unpaced.market.profiles)[0]
    rest = RESTClient(api_key=unpaced.api_key, base=unpaced.rest_base)
    snap = await asyncio.to_thread(rest.get_snapshot_ticker, "stocks", symbol)
    assert snap.prev_day.close == unpaced.market.profiles[symbol].prev_close


async def test_finlight_articles_flow_from_the_market(unpaced: SimServers) -> None:
    articles: list[Any] = []
    arrived = asyncio.Event()

    def on_article(article: Any) -> None:
        articles.append(article)
        arrived.set()

    finlight = FinlightClient(
        ApiConfig(api_key=unpaced.finlight_api_key, wss_url=unpaced.finlight_wss_url)
    )
    task = asyncio.create_task(finlight.connect(GetArticlesWebSocketParams(), on_article))
    await unpaced.finlight.watch.wait_for(lambda: unpaced.finlight.metrics.admitted == 1, WAIT)
    # The unpaced market only moves while a Massive client reads.
    received = Batches()
    reader = massive_client(unpaced, ["AM.*"])
    massive = asyncio.create_task(reader.connect(received, max_size=None, proxy=None))
    await asyncio.wait_for(arrived.wait(), WAIT)
    assert articles[0].link.startswith("http")
    finlight.stop()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await close_massive(reader, massive)


async def test_time_paced_market_advances_with_nobody_connected() -> None:
    real = ManualClock(0)
    config = SimConfig(scenario=SCENARIO, speed=10.0)
    async with SimServers(config, real=real) as sim:
        start = sim.market.now_ns
        broadcaster = sim.broadcaster
        assert broadcaster is not None
        real.advance(2.0)
        target = start + 20 * NS_PER_SECOND
        await broadcaster.watch.wait_for(lambda: sim.market.now_ns >= target, WAIT)
        assert sim.market.now_ns == target
        assert sim.massive.metrics.events_sent == 0  # nothing encoded for nobody


async def test_rate_paced_stream_delivers(unpaced: SimServers) -> None:
    del unpaced
    async with SimServers(SimConfig(scenario=SCENARIO, speed=None, rate=20_000.0)) as sim:
        received = Batches()
        client = massive_client(sim, ["T.*", "Q.*"])
        task = asyncio.create_task(client.connect(received, max_size=None, proxy=None))
        await received.at_least(2_000)
        await close_massive(client, task)


async def test_control_api_switches_faults_and_kicks(unpaced: SimServers) -> None:
    assert unpaced.control_url is not None
    client = massive_client(unpaced, ["T.*"])
    received = Batches()
    task = asyncio.create_task(client.connect(received, max_size=None, proxy=None))
    massive = unpaced.massive
    await massive.watch.wait_for(lambda: massive.subscriptions() == [{"T.*"}], WAIT)
    async with aiohttp.ClientSession(base_url=unpaced.control_url) as http:
        reply = await http.post("/faults", json={"massive": {"malformed_ratio": 0.25}})
        assert reply.status == 200
        assert unpaced.faults.massive.malformed_ratio == 0.25
        bad = await http.post("/faults", json={"massive": {"no_such_fault": 1}})
        assert bad.status == 400
        await http.post("/faults/clear")
        assert unpaced.faults.massive.malformed_ratio == 0.0
        kicked = await http.post("/massive/kick", json={})
        assert (await kicked.json()) == {"affected": 1}
        await massive.watch.wait_for(lambda: massive.metrics.authenticated == 2, WAIT)
        metrics = json.loads(await (await http.get("/metrics")).text())
        assert metrics["massive_ws"]["max_connections_kicks"] == 1
    await close_massive(client, task)


async def test_unpaced_stream_drops_a_client_that_stops_reading(unpaced: SimServers) -> None:
    unpaced.faults.massive.slow_consumer_seconds = 0.5
    release = asyncio.Event()

    async def stuck(batch: list[Any]) -> None:
        await release.wait()

    client = massive_client(unpaced, ["T.*", "Q.*", "A.*"])
    task = asyncio.create_task(client.connect(stuck, max_size=None, proxy=None))
    massive = unpaced.massive
    await massive.watch.wait_for(lambda: massive.metrics.slow_consumer_kicks == 1, WAIT)
    release.set()
    # After the kick the market keeps being paced by whoever reads: the client, reconnected.
    await massive.watch.wait_for(lambda: massive.metrics.authenticated == 2, WAIT)
    await close_massive(client, task)


async def test_pacing_can_change_while_running() -> None:
    real = ManualClock(0)
    async with SimServers(SimConfig(scenario=SCENARIO, speed=None), real=real) as sim:
        broadcaster = sim.broadcaster
        assert broadcaster is not None
        start = sim.market.now_ns  # unpaced and nobody reading: the market waits
        sim.set_pacing(5.0)
        real.advance(1.0)
        target = start + 5 * NS_PER_SECOND
        await broadcaster.watch.wait_for(lambda: sim.market.now_ns >= target, WAIT)
        assert sim.market.now_ns == target
        with pytest.raises(ValueError, match="rate"):
            sim.set_pacing(None, rate=0.0)
