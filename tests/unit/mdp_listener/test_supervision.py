from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from mdp_core.backoff import BackoffPolicy
from mdp_core.clock import ManualClock
from mdp_core.settings import Secret, load
from mdp_core.telemetry import Metrics
from mdp_listener import (
    InvalidTopicError,
    ListenerSettings,
    ListenerState,
    MassiveListener,
    SessionOutcome,
    validate_topics,
)
from mdp_queues import MemoryBus, Topology
from mdp_runtime import AuthError
from mdp_runtime.stream import Interruption

SATURDAY_NOON = datetime(2026, 11, 21, 17, 0, tzinfo=UTC)  # 12:00 ET


def settings(**overrides: Any) -> ListenerSettings:
    values: dict[str, Any] = {
        "api_key": Secret("k"),
        "feed": "127.0.0.1:9",
        "secure": False,
        "backoff_initial_seconds": 1.0,
        "backoff_max_seconds": 8.0,
        "backoff_jitter": 0.0,
        "kick_backoff_seconds": 90.0,
        "stable_after_seconds": 30.0,
    }
    values.update(overrides)
    return load(ListenerSettings, {}, **values)


def listener(clock: ManualClock, **overrides: Any) -> MassiveListener:
    bus = MemoryBus(Topology(), clock=clock)
    return MassiveListener(
        settings(**overrides), bus.publisher(), clock, Metrics("listener"), rng=random.Random(1)
    )


def test_topics_are_validated_and_deduplicated() -> None:
    assert validate_topics([" T.* ", "Q.AAPL", "T.*"]) == ("T.*", "Q.AAPL")
    for bad in ("X.*", "T", "T.", ".AAPL", ""):
        with pytest.raises(InvalidTopicError, match="must be"):
            validate_topics([bad])


def test_ordinary_failures_back_off_exponentially_up_to_the_cap() -> None:
    subject = listener(ManualClock(SATURDAY_NOON))
    delays = [subject._delay_after(SessionOutcome.ERROR) for _ in range(6)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_a_kick_backs_off_long_and_a_stable_session_resets_the_backoff() -> None:
    clock = ManualClock(SATURDAY_NOON)
    subject = listener(clock)
    subject._delay_after(SessionOutcome.ERROR)
    subject._delay_after(SessionOutcome.ERROR)
    assert subject._delay_after(SessionOutcome.KICKED) == 2.0  # first kick: our own overlap
    assert subject._delay_after(SessionOutcome.KICKED) == 90.0  # again: another copy
    subject._backoff.started()
    clock.advance(31)
    assert subject._delay_after(SessionOutcome.CLOSED) == 1.0


def test_after_a_stable_session_a_kick_is_a_first_kick_again() -> None:
    clock = ManualClock(SATURDAY_NOON)
    subject = listener(clock, kick_first_retry_seconds=0.5)
    assert subject._delay_after(SessionOutcome.KICKED) == 0.5
    subject._backoff.started()
    clock.advance(31)
    assert subject._delay_after(SessionOutcome.KICKED) == 0.5
    subject._backoff.started()
    assert subject._delay_after(SessionOutcome.KICKED) == 90.0


def test_jitter_only_shortens_delays() -> None:
    subject = listener(ManualClock(SATURDAY_NOON), backoff_jitter=0.5)
    delays = [subject._delay_after(SessionOutcome.STALE) for _ in range(3)]
    for base, delay in zip((1.0, 2.0, 4.0), delays, strict=True):
        assert base * 0.5 <= delay <= base
    kick = subject._delay_after(SessionOutcome.KICKED)
    assert 1.0 <= kick <= 2.0  # the kick delay is jittered the same way


def test_interruptions_reconnect_at_once_and_are_not_counted() -> None:
    subject = listener(ManualClock(SATURDAY_NOON))
    assert subject._delay_after(Interruption.STOP) == 0.0
    assert subject._delay_after(Interruption.RESTART) == 0.0
    assert subject._metrics.counter("reconnects").total == 0
    subject._delay_after(SessionOutcome.ERROR)
    assert subject._metrics.counter("reconnects").snapshot()["reason=error"] == 1


def test_a_missing_key_is_an_auth_error() -> None:
    with pytest.raises(AuthError, match="API key"):
        listener(ManualClock(SATURDAY_NOON), api_key=None)


async def test_outside_market_sessions_it_waits_instead_of_connecting() -> None:
    clock = ManualClock(SATURDAY_NOON)
    subject = listener(clock)
    stop = asyncio.Event()
    task = asyncio.create_task(subject.run(stop))
    await clock.wait_for_sleepers(2)  # the batch flusher and the wait for Monday 04:00
    assert subject.status()["state"] == ListenerState.WAITING_FOR_SESSION
    assert subject.sessions == 0
    # an idle listener outside market hours is healthy: ready, and says why
    assert subject.status()["feed_state"] == "closed"
    assert subject.upstream_readiness() == (True, "closed")
    stop.set()
    async with asyncio.timeout(5):
        await task
    assert subject.status()["state"] == ListenerState.STOPPED


async def test_a_disabled_listener_stays_idle_until_started() -> None:
    clock = ManualClock(SATURDAY_NOON)
    subject = listener(clock, autostart=False)
    stop = asyncio.Event()
    task = asyncio.create_task(subject.run(stop))
    await clock.wait_for_sleepers(1)  # only the batch flusher
    for _ in range(100):  # many loop turns (a count, not a time): a listener that would start has
        await asyncio.sleep(0)
    assert subject.status()["state"] == ListenerState.IDLE
    assert clock.pending_sleepers == 1
    subject.start_streaming()
    await clock.wait_for_sleepers(2)
    assert subject.status()["state"] == ListenerState.WAITING_FOR_SESSION
    stop.set()
    async with asyncio.timeout(5):
        await task


def test_control_changes_are_applied_to_the_next_connection() -> None:
    subject = listener(ManualClock(SATURDAY_NOON))
    assert subject.set_subscriptions(["T.AAPL"]) == ("T.AAPL",)
    assert subject.subscriptions == ("T.AAPL",)
    subject.set_feed("delayed.massive.com", market="stocks", secure=True)
    assert subject.feed == "delayed.massive.com"
    with pytest.raises(ValueError, match="host"):
        subject.set_feed("  ")
    with pytest.raises(ValueError, match="not allowed"):
        subject.set_feed("delayed.massive.com.evil.example")
    assert subject.feed == "delayed.massive.com"
    status = subject.status()
    assert status["topics"] == ["T.AAPL"]
    assert status["state"] == "idle"


def test_tls_is_required_off_loopback_even_for_a_listed_feed() -> None:
    subject = listener(
        ManualClock(SATURDAY_NOON), feed_allow=("feed.example:8080", "127.0.0.1:8080")
    )
    with pytest.raises(ValueError, match="needs TLS"):
        subject.set_feed("feed.example:8080", secure=False)
    assert subject.feed == "127.0.0.1:9"
    subject.set_feed("127.0.0.1:8080", secure=False)  # loopback: the simulator
    subject.set_feed("FEED.example:8080", secure=True)
    assert subject.status()["secure"] is True


WEDNESDAY_11_ET = datetime(2026, 11, 25, 16, 0, tzinfo=UTC)


def test_a_silent_feed_in_a_session_is_stale_and_unready() -> None:
    clock = ManualClock(WEDNESDAY_11_ET)
    subject = listener(clock, ready_stale_seconds=10.0)
    subject._streaming = True
    subject._last_frame = clock.monotonic()
    assert subject.upstream_readiness() == (True, "streaming")
    clock.advance(10)
    assert subject.upstream_readiness() == (True, "streaming")  # the boundary itself is fine
    clock.advance(0.5)
    assert subject.upstream_readiness() == (False, "stale")
    assert subject.status()["feed_state"] == "stale"
    subject._last_frame = clock.monotonic()  # a frame arrives
    assert subject.upstream_readiness() == (True, "streaming")
    subject._streaming = False
    subject.state = ListenerState.BACKING_OFF
    assert subject.upstream_readiness() == (False, "backing_off")


async def test_an_extra_closure_date_from_the_settings_keeps_the_listener_away() -> None:
    clock = ManualClock(WEDNESDAY_11_ET)
    environ = {"MDP_MARKET_CLOSURES": "2026-11-25"}
    bus = MemoryBus(Topology(), clock=clock)
    subject = MassiveListener(
        load(ListenerSettings, environ, api_key=Secret("k"), feed="127.0.0.1:9", secure=False),
        bus.publisher(),
        clock,
        Metrics("listener"),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(subject.run(stop))
    await clock.wait_for_sleepers(2)  # the batch flusher and the wait for the next session
    assert subject.sessions == 0
    assert subject.upstream_readiness() == (True, "closed")
    stop.set()
    async with asyncio.timeout(5):
        await task


def test_the_reconnect_policy_comes_from_the_settings() -> None:
    assert settings().reconnect_backoff == BackoffPolicy(
        1.0, 8.0, jitter=0.0, stable_after_seconds=30.0
    )
