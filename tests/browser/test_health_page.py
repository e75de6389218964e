"""The SCP health page in a real headless Chromium: one readable row per component instance.

Heartbeats of every component (listener, news listener, processor, news processor, scanner,
WDS and the SCP itself, plus a listener stopped from the controls and one that stopped beating)
are served from a stand-in MDC; the SCP runs on a manual clock, so the test moves time and the
totals between two beats and reads the rates the page shows. Chromium is Debian's, driven by
Playwright (see ``mdp_testing.browser``); every wait is on a page condition with a timeout.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mdp_core.clock import ManualClock
from mdp_core.settings import Secret, load
from mdp_scp import ControlPlane, ScpSettings, User, UserStore, hash_password
from mdp_scp.passwords import ScryptParameters
from mdp_testing.browser import CHROMIUM, CHROMIUM_ARGS, require_browser

pytestmark = pytest.mark.browser

PASSWORD = "health-page-password"
TIMEOUT_MS = 30_000


class Heartbeats:
    """The two Redis commands the heartbeat reader uses, over a dict the test rewrites."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def put(self, service: str, instance: str, ts_ms: int, **document: Any) -> None:
        body = {"service": service, "instance": instance, "ts_ms": ts_ms, **document}
        self.values[f"mdp:heartbeat:{service}:{instance}"] = json.dumps(body)

    async def _keys(self) -> AsyncIterator[bytes]:
        for key in list(self.values):
            yield key.encode()

    def scan_iter(self, match: str | None = None, count: int | None = None) -> AsyncIterator[Any]:
        del match, count
        return self._keys()

    async def mget(self, keys: Any, *args: Any) -> list[Any]:
        del args
        return [self.values.get(k.decode() if isinstance(k, bytes) else k) for k in keys]


def _beat_all(beats: Heartbeats, now_ms: int, scale: int, start_ms: int) -> None:
    """Every component's beat at ``now_ms``, totals multiplied by ``scale``."""
    common = {"version": "0.3.0", "started_ms": start_ms}
    beats.put(
        "listener", "mdl-0", now_ms, status="streaming", **common,
        figures={"events_received": 1_000 * scale, "last_frame_ms": now_ms - 250},
    )  # fmt: skip
    beats.put(
        "news-listener", "fdl-0", now_ms, status="streaming", **common,
        figures={"articles_in": 2 * scale, "published_events": {"A": 99_999}},
    )  # fmt: skip
    beats.put(
        "processor", "mdp-0", now_ms, status="running", **common,
        figures={"events": 900 * scale, "lag_event_p99_seconds": 0.042},
    )  # fmt: skip
    beats.put(
        "news-processor", "fdp-0", now_ms, status="running", **common,
        figures={"articles_in": 2 * scale},
    )  # fmt: skip
    beats.put(
        "scanner", "mds-0", now_ms, status="running", **common,
        figures={"messages_total": 500 * scale},
    )  # fmt: skip
    beats.put(
        "widget-service", "wds-0", now_ms, status="running", **common,
        figures={"messages_out": 3_000 * scale},
    )  # fmt: skip
    beats.put(
        "control-plane", "scp-0", now_ms, status="running", **common,
        figures={"requests": 10 * scale},
    )  # fmt: skip
    # Stopped from the controls: the listener reports "idle" and keeps beating.
    beats.put(
        "listener", "mdl-stopped", now_ms, status="idle", **common,
        figures={"events_received": 5, "last_frame_ms": 0},
    )  # fmt: skip
    # Stopped beating a minute ago: stale.
    beats.put(
        "scanner", "mds-old", now_ms - 60_000, status="running", **common,
        figures={"messages_total": 1},
    )  # fmt: skip


class _Revocations:
    """The revoked-session set of the WDC, in memory (the stand-in WDS does not read it)."""

    def __init__(self) -> None:
        self.members: dict[str, float] = {}

    async def zadd(self, name: str, mapping: dict[str, float]) -> int:
        del name
        self.members.update(mapping)
        return len(mapping)

    async def zremrangebyscore(self, name: str, min: float, max: float) -> int:
        del name, min, max
        return 0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
async def scp(clock: ManualClock) -> AsyncIterator[tuple[ControlPlane, Heartbeats]]:
    settings = load(
        ScpSettings,
        environ={},
        host="127.0.0.1",
        port=0,
        wds_url="ws://127.0.0.1:9/ws",
        wds_token_secret=Secret("health-page-wds-secret"),
        session_secret=Secret("health-page-session-secret"),
        database_url=Secret("sqlite:///:memory:"),
    )
    users = UserStore([User("ops", "admin", hash_password(PASSWORD, ScryptParameters(n=1 << 10)))])
    beats = Heartbeats()
    plane = ControlPlane(
        settings, users=users, redis=beats, clock=clock, revocations=_Revocations()
    )
    await plane.start()
    yield plane, beats
    await plane.stop()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: ``MDP_SCREENSHOT_DIR`` (the docs' pictures), else a temp dir."""
    directory = Path(os.environ.get("MDP_SCREENSHOT_DIR") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _cell(service: str, instance: str, column: str) -> str:
    return f'#components tr[data-service="{service}"][data-instance="{instance}"] td.{column}'


async def test_health_page_shows_state_uptime_freshness_rates_and_sparklines(
    scp: tuple[ControlPlane, Heartbeats], clock: ManualClock, shots: Path
) -> None:
    require_browser()
    from playwright.async_api import async_playwright

    plane, beats = scp
    now_ms = clock.now_ns() // 1_000_000
    start_ms = now_ms - 1_000 - 3_725_000
    _beat_all(beats, now_ms - 1_000, scale=1, start_ms=start_ms)

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS), headless=True
        )
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 800})
            page.set_default_timeout(TIMEOUT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(f"{plane.url}/login")
            await page.fill("input[name=user]", "ops")
            await page.fill("input[name=password]", PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_url(f"{plane.url}/")
            await page.goto(f"{plane.url}/admin")
            rows = page.locator("#components tbody tr")
            await page.wait_for_function(
                "() => document.querySelectorAll('#components tbody tr[data-service]').length === 9"
            )

            # Every component appears, WDS and SCP included, each with its own instance.
            services = await rows.evaluate_all("rows => rows.map(r => r.dataset.service)")
            assert sorted(set(services)) == [
                "control-plane", "listener", "news-listener", "news-processor", "processor",
                "scanner", "widget-service",
            ]  # fmt: skip

            # States in words: streaming, stopped from the controls, stale after silence.
            assert await page.locator(_cell("listener", "mdl-0", "state-cell")).inner_text() == (
                "streaming"
            )
            assert await page.locator(
                _cell("listener", "mdl-stopped", "state-cell")
            ).inner_text() == ("stopped")
            assert await page.locator(_cell("scanner", "mds-old", "state-cell")).inner_text() == (
                "stale"
            )
            assert await page.locator(_cell("listener", "mdl-0", "version")).inner_text() == "0.3.0"
            # Started 3725 s before the first beat (and 1 s more has passed): 1h 02m.
            assert await page.locator(_cell("listener", "mdl-0", "uptime")).inner_text() == "1h 02m"
            # Freshness: the listener's last frame 1.25 s ago; the processor's event-to-write p99.
            assert await page.locator(_cell("listener", "mdl-0", "freshness")).inner_text() == (
                "1.25s"
            )
            assert await page.locator(_cell("processor", "mdp-0", "freshness")).inner_text() == (
                "0.04s"
            )
            # One beat each: no rate yet (a dash), never the raw total.
            assert await page.locator(_cell("listener", "mdl-0", "rate")).inner_text() == "\u2013"
            # The update time is exchange time with its zone, 24 h, as on the dashboard (not
            # the browser's local 12-hour clock).
            meta = await page.locator("#health-meta").inner_text()
            assert re.fullmatch(r"updated ([01]\d|2[0-3]):[0-5]\d:[0-5]\d ET", meta), meta
            # The same market clock as the dashboard's header.
            await page.wait_for_selector("#market-clock[data-session]")
            assert " ET \u00b7 " in await page.locator("#market-clock").inner_text()

            # Five seconds later the totals grew: rates per second, not totals.
            clock.advance(5.0)
            _beat_all(beats, now_ms + 4_000, scale=6, start_ms=start_ms)
            await page.wait_for_function(
                "sel => document.querySelector(sel)?.textContent.startsWith('1,000')",
                arg=_cell("listener", "mdl-0", "rate"),
            )
            listener_rate = await page.locator(_cell("listener", "mdl-0", "rate")).inner_text()
            assert listener_rate.replace("\n", "") == "1,000events/s"
            # The news listener shows its own articles, not the shared publisher's events.
            news_rate = await page.locator(_cell("news-listener", "fdl-0", "rate")).inner_text()
            assert news_rate.replace("\n", "") == "2.0articles/s"
            wds_rate = await page.locator(_cell("widget-service", "wds-0", "rate")).inner_text()
            assert wds_rate.replace("\n", "") == "3,000messages/s"
            assert (
                await page.locator(_cell("listener", "mdl-0", "trend") + " polyline").count() == 0
            )
            # A third beat at twice the rate: two rates make a rising line (SVG y grows down).
            clock.advance(5.0)
            _beat_all(beats, now_ms + 9_000, scale=16, start_ms=start_ms)
            line = page.locator(_cell("listener", "mdl-0", "trend") + " polyline")
            await line.wait_for(state="attached")
            assert await line.get_attribute("points") == "0.0,11.0 120.0,1.0"
            await page.screenshot(path=str(shots / "health-components.png"))
            assert not errors
        finally:
            await browser.close()
