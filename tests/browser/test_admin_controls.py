"""The /admin page's controls in a real headless Chromium, over the real Redis.

An admin clicks the runtime buttons: "pause all" for the processors, "drain" on one WDS row,
"resume all" for the WDSs, and the news listener's stop and state. Each click goes through
the SCP (session cookie + CSRF header) to its effect: the order in the Redis control hash,
read there by a :class:`~mdp_runtime.RuntimeControl` as a component does, whose reported state
(its heartbeat) the page then shows; the news listener's control route is called for real.
Every click is in the audit log. Every wait is on a page condition with a timeout.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from mdp_cache.control import RuntimeState, read_desired
from mdp_core.settings import Secret, load
from mdp_runtime import RuntimeControl
from mdp_runtime.health import ControlRequest, HealthServer
from mdp_scp import ControlPlane, ScpSettings, User, UserStore, hash_password
from mdp_scp.listener_control import NEWS_CONTROL_CALLS, ListenerControl
from mdp_scp.passwords import ScryptParameters
from mdp_testing.browser import CHROMIUM, CHROMIUM_ARGS, require_browser

pytestmark = pytest.mark.browser

PASSWORD = "admin-controls-password"
TIMEOUT_MS = 30_000


class _Revocations:
    async def zadd(self, name: str, mapping: dict[str, float]) -> int:
        return len(mapping)

    async def zremrangebyscore(self, name: str, min: float, max: float) -> int:
        return 0


async def beat(redis: aioredis.Redis, service: str, instance: str, status: str) -> None:
    """A heartbeat as the component writes it, with the state it reached."""
    document = {
        "service": service,
        "instance": instance,
        "status": status,
        "ts_ms": int(time.time() * 1000),
        "interval_s": 60,
        "version": "0.3.0",
        "figures": {},
    }
    await redis.set(f"mdp:heartbeat:{service}:{instance}", json.dumps(document), ex=120)


class Component:
    """One instance following the orders as a real one does, reporting its state by heartbeat."""

    def __init__(self, redis: aioredis.Redis, service: str, instance: str) -> None:
        self.redis, self.service, self.instance = redis, service, instance
        self.control = RuntimeControl(redis, service, instance, self._apply)

    async def _apply(self, state: RuntimeState) -> None:
        await beat(self.redis, self.service, self.instance, state)


@pytest.fixture
async def redis(redis_db_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_db_url)
    yield client
    await client.aclose()


@pytest.fixture
async def news() -> AsyncIterator[tuple[HealthServer, list[str]]]:
    calls: list[str] = []

    async def stop(_: ControlRequest) -> dict[str, object]:
        calls.append("stop")
        return {"enabled": False}

    async def state(_: ControlRequest) -> dict[str, object]:
        calls.append("state")
        return {"enabled": "stop" not in calls}

    health = HealthServer(
        "127.0.0.1",
        0,
        service="news-listener",
        version="0",
        metrics_snapshot=dict,
        readiness={},
        control_token="news-token",
    )
    health.add_control("POST", "/stop", stop)
    health.add_control("GET", "/state", state)
    await health.start()
    yield health, calls
    await health.stop()


@pytest.fixture
async def plane(
    redis: aioredis.Redis, news: tuple[HealthServer, list[str]]
) -> AsyncIterator[ControlPlane]:
    settings = load(
        ScpSettings,
        environ={},
        host="127.0.0.1",
        port=0,
        wds_url="ws://127.0.0.1:9/ws",
        wds_token_secret=Secret("admin-controls-wds-secret"),
        session_secret=Secret("admin-controls-session-secret"),
        database_url=Secret("sqlite:///:memory:"),
    )
    users = UserStore([User("ops", "admin", hash_password(PASSWORD, ScryptParameters(n=1 << 10)))])
    control = ListenerControl(news[0].url, "news-token", NEWS_CONTROL_CALLS)
    scp = ControlPlane(
        settings, users=users, redis=redis, revocations=_Revocations(), news_listener=control
    )
    await scp.start()
    yield scp
    await scp.stop()
    await control.close()


def _row(service: str, instance: str) -> str:
    return f'#components tr[data-service="{service}"][data-instance="{instance}"]'


async def test_admin_runtime_and_news_buttons_take_effect_and_are_audited(
    plane: ControlPlane, redis: aioredis.Redis, news: tuple[HealthServer, list[str]]
) -> None:
    require_browser()
    from playwright.async_api import async_playwright

    components = [
        Component(redis, "processor", "mdp-0"),
        Component(redis, "processor", "mdp-1"),
        Component(redis, "widget-service", "wds-0"),
        Component(redis, "widget-service", "wds-1"),
    ]
    for component in components:
        await beat(redis, component.service, component.instance, "running")

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS), headless=True
        )
        try:
            page = await browser.new_page(viewport={"width": 1500, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(f"{plane.url}/login")
            await page.fill("input[name=user]", "ops")
            await page.fill("input[name=password]", PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_url(f"{plane.url}/")
            await page.goto(f"{plane.url}/admin")
            await page.wait_for_selector(_row("widget-service", "wds-0") + " td.control button")

            # Pause every processor: one order for "*", both instances follow it.
            await page.click('#runtime button[data-component="processor"][data-command="pause"]')
            await page.wait_for_function(
                "() => document.querySelector('#control-result').textContent"
                ".includes('/api/admin/runtime/processor/pause: HTTP 200')"
            )
            orders = await read_desired(redis, "processor")
            assert [(k, o.state, o.by) for k, o in orders.items()] == [("*", "paused", "ops")]
            for component in components:
                await component.control.check()
            for instance in ("mdp-0", "mdp-1"):
                cell = page.locator(_row("processor", instance) + " td.state-cell")
                await page.wait_for_function(
                    "sel => document.querySelector(sel)?.textContent === 'paused'",
                    arg=_row("processor", instance) + " td.state-cell",
                )
                assert await cell.inner_text() == "paused"

            # Drain one WDS from its own row; the other keeps running.
            await page.click(_row("widget-service", "wds-0") + ' button[data-command="drain"]')
            await page.wait_for_function(
                "() => document.querySelector('#control-result').textContent"
                ".includes('widget-service/drain: HTTP 200')"
            )
            assert [await c.control.check() for c in components[2:]] == ["draining", "running"]
            await page.wait_for_function(
                "sel => document.querySelector(sel)?.textContent === 'draining'",
                arg=_row("widget-service", "wds-0") + " td.state-cell",
            )
            assert (
                await page.locator(_row("widget-service", "wds-1") + " td.state-cell").inner_text()
                == "running"
            )

            # Resume every WDS.
            await page.click(
                '#runtime button[data-component="widget-service"][data-command="resume"]'
            )
            await page.wait_for_function(
                "() => document.querySelector('#control-result').textContent"
                ".includes('widget-service/resume: HTTP 200')"
            )
            assert [await c.control.check() for c in components[2:]] == ["running", "running"]

            # The news listener: stop, then read its state.
            await page.click("#news-stop")
            await page.wait_for_function(
                "() => document.querySelector('#control-result').textContent"
                ".includes('/api/control/news/stop: HTTP 200')"
            )
            await page.click("#news-state")
            # The stop's own reply says "enabled": false too: wait for the state's reply.
            await page.wait_for_function(
                "() => { const text = document.querySelector('#control-result').textContent;"
                " return text.includes('GET /api/control/news/state: HTTP 200')"
                " && text.includes('\"enabled\": false'); }"
            )
            assert news[1] == ["stop", "state"]
            assert not errors
        finally:
            await browser.close()

    async with plane.database.transaction() as conn:
        entries = await plane.audit.query(conn, actor="ops", action=None, before=None, limit=20)
    assert [(e.action, e.result) for e in reversed(entries) if e.action != "login"] == [
        ("runtime.processor.pause", "ok"),
        ("runtime.widget-service.drain", "ok"),
        ("runtime.widget-service.resume", "ok"),
        ("control.news-listener.stop", "200"),
    ]
