"""The demo's scanner raises the new alert streams from the simulated market (issue 17).

The simulator serves minute history consistent with today's tape, so the rows carry a
time-of-day RVol and the scenario's movers cross the unusual-volume thresholds and move after
their news within a simulated half hour.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from mdp_platform.demo import Demo

from .test_demo import _options


@pytest.fixture
async def demo() -> AsyncIterator[Demo]:
    running = Demo(_options(fakeredis=True), progress=lambda _line: None)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


async def test_rows_carry_rvol_and_the_alert_streams_fill(demo: Demo) -> None:
    wdc = demo.wdc
    assert wdc is not None
    pubsub = wdc.pubsub()
    await pubsub.subscribe("alerts:volume", "alerts:news")
    first: dict[str, dict[str, object]] = {}
    try:
        async with asyncio.timeout(90):
            while len(first) < 2:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
                if message is not None:
                    first.setdefault(message["channel"].decode(), json.loads(message["data"]))
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
    volume, news = first["alerts:volume"], first["alerts:news"]
    assert float(volume["rvol_tod"]) >= float(volume["threshold"])  # type: ignore[arg-type]
    assert news["headline"]
    symbol = volume["symbol"]
    row = json.loads(await wdc.get(f"quote:{symbol}") or b"{}")
    assert row["rvol_tod"] is not None
    assert row["rvol_tod"] > 0
