"""The header clock's answer: the market's session at its now, holidays and early closes."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from mdp_core.calendar import MarketCalendar
from mdp_core.clock import ET, ManualClock, to_ns
from mdp_scp import ControlPlane
from mdp_scp.market_session import market_session

from .conftest import PASSWORDS, FakeHeartbeatRedis, LoginFn, make_settings, make_users

CALENDAR = MarketCalendar()


def _at(year: int, month: int, day: int, hour: int, minute: int) -> int:
    return to_ns(datetime(year, month, day, hour, minute, tzinfo=ET))


def _ms(year: int, month: int, day: int, hour: int, minute: int) -> int:
    return _at(year, month, day, hour, minute) // 1_000_000


def test_each_session_of_a_normal_day_and_when_it_ends() -> None:
    cases = [
        ((2026, 11, 23, 3, 59), "closed", "Closed", "pre_market", (2026, 11, 23, 4, 0)),
        ((2026, 11, 23, 4, 0), "pre_market", "Pre-market", "regular", (2026, 11, 23, 9, 30)),
        ((2026, 11, 23, 9, 30), "regular", "Market open", "after_hours", (2026, 11, 23, 16, 0)),
        ((2026, 11, 23, 16, 0), "after_hours", "After hours", "closed", (2026, 11, 23, 20, 0)),
        ((2026, 11, 23, 20, 0), "closed", "Closed", "pre_market", (2026, 11, 24, 4, 0)),
    ]
    for now, session, label, following, change in cases:
        body = market_session(CALENDAR, _at(*now), 1.0)
        assert body["session"] == session, now
        assert body["label"] == label, now
        assert body["next_session"] == following, now
        assert body["next_change_ms"] == _ms(*change), now
        assert body["now_ms"] == _ms(*now)
        assert body["holiday"] is None


def test_holidays_weekends_and_early_closes_are_named() -> None:
    thanksgiving = market_session(CALENDAR, _at(2026, 11, 26, 12, 0), 5.0)
    assert thanksgiving["session"] == "closed"
    assert thanksgiving["label"] == "Closed \u00b7 Thanksgiving Day"
    assert thanksgiving["holiday"] == "Thanksgiving Day"
    assert thanksgiving["speed"] == 5.0
    assert thanksgiving["next_change_ms"] == _ms(2026, 11, 27, 4, 0)

    saturday = market_session(CALENDAR, _at(2026, 12, 5, 11, 0), 1.0)
    assert saturday["label"] == "Closed \u00b7 weekend"
    assert saturday["next_change_ms"] == _ms(2026, 12, 7, 4, 0)

    # The day after Thanksgiving closes at 13:00 ET.
    friday = market_session(CALENDAR, _at(2026, 11, 27, 12, 59), 1.0)
    assert friday["early_close"] is True
    assert (friday["session"], friday["next_change_ms"]) == ("regular", _ms(2026, 11, 27, 13, 0))


async def test_the_api_answers_from_the_market_clock_to_logged_in_users(
    clock: ManualClock, heartbeats: FakeHeartbeatRedis, login: LoginFn
) -> None:
    market = ManualClock(datetime(2026, 11, 26, 9, 45, tzinfo=ET))
    plane = ControlPlane(
        make_settings(),
        users=make_users(),
        clock=clock,
        redis=heartbeats,
        market_clock=market,
        market_speed=5.0,
    )
    client: TestClient[web.Request, web.Application] = TestClient(TestServer(plane.app))
    await client.start_server()
    try:
        assert (await client.get("/api/market")).status == 401
        assert await login(client, "viewer", PASSWORDS["viewer"]) == 303
        response = await client.get("/api/market")
        assert response.status == 200
        assert response.headers["Cache-Control"] == "no-store"
        body = await response.json()
        assert body["now_ms"] == _ms(2026, 11, 26, 9, 45)  # the market's now, not the SCP's
        assert body["label"] == "Closed \u00b7 Thanksgiving Day"
        assert body["speed"] == 5.0
    finally:
        await client.close()
