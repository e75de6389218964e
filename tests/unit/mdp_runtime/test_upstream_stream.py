"""The stream base both listeners share: its state machine, pauses, interruptions and delays.

A scripted component stands in for a vendor: each connection waits for the test to say how it
ends (an outcome put in a queue), and the clock is manual, so every wait is driven by the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect

from mdp_core.backoff import BackoffPolicy
from mdp_core.clock import ManualClock
from mdp_core.telemetry import Metrics
from mdp_runtime import redirects
from mdp_runtime.stream import MAX_CLOSED_WAIT_SECONDS, Interruption, StreamState, UpstreamStream

START = datetime(2026, 11, 25, 16, 0, tzinfo=UTC)
POLICY = BackoffPolicy(1.0, 8.0, stable_after_seconds=30.0)


class End(enum.StrEnum):
    DROPPED = "dropped"
    REFUSED = "refused"


class Scripted(UpstreamStream[End]):
    """Connections that end when the test says so; ``REFUSED`` has a fixed delay of 50 s."""

    def __init__(self, clock: ManualClock, *, enabled: bool = True, closed_for: float = 0.0):
        self.metrics = Metrics("scripted")
        super().__init__(
            clock=clock,
            backoff=POLICY,
            reconnects=self.metrics.counter("reconnects"),
            enabled=enabled,
            rng=random.Random(5),
        )
        self.ends: asyncio.Queue[End] = asyncio.Queue()
        self.connects: asyncio.Queue[int] = asyncio.Queue()  # the number of each connection
        self.pauses: asyncio.Queue[StreamState] = asyncio.Queue()  # the state of each pause
        self.connected = asyncio.Event()
        self.closed_for = closed_for
        self.stable_calls = 0

    async def _connect(self, stop: asyncio.Event) -> End | Interruption:
        ended = asyncio.create_task(self.ends.get())
        self.connected.set()
        self.connects.put_nowait(self.connections)
        try:
            done, interruption = await self._until_interrupted(stop, {ended})
        finally:
            self.connected.clear()
            ended.cancel()
            await asyncio.gather(ended, return_exceptions=True)
        if ended in done:
            return ended.result()
        return interruption or Interruption.RESTART

    async def _pause(self, stop: asyncio.Event, seconds: float | None) -> None:
        self.pauses.put_nowait(self.state)
        await super()._pause(stop, seconds)

    def _seconds_until_session(self) -> float:
        return self.closed_for

    def _fixed_delay(self, outcome: End) -> float | None:
        return 50.0 if outcome is End.REFUSED else None

    def _on_stable(self) -> None:
        self.stable_calls += 1


@dataclass
class Run:
    """A component running until :meth:`finish` (which the ``running`` context calls too)."""

    component: Scripted
    clock: ManualClock
    stop: asyncio.Event
    task: asyncio.Task[None]

    async def finish(self) -> None:
        self.stop.set()
        async with asyncio.timeout(5):
            await self.task
        assert self.component.state is StreamState.STOPPED


@contextlib.asynccontextmanager
async def running(*, enabled: bool = True, closed_for: float = 0.0) -> AsyncIterator[Run]:
    clock = ManualClock(START)
    component = Scripted(clock, enabled=enabled, closed_for=closed_for)
    stop = asyncio.Event()
    run = Run(component, clock, stop, asyncio.create_task(component.run(stop)))
    try:
        yield run
    finally:
        await run.finish()


async def connected(component: Scripted) -> None:
    async with asyncio.timeout(5):
        await component.connected.wait()


async def ends_and_waits(component: Scripted, clock: ManualClock, end: End, seconds: float) -> None:
    """The connection ends with ``end``; the component waits exactly ``seconds`` to reconnect."""
    component.ends.put_nowait(end)
    async with asyncio.timeout(5):
        await clock.wait_for_sleepers(1)
    assert component.state is StreamState.BACKING_OFF
    clock.advance(seconds - 0.001)
    assert clock.pending_sleepers == 1
    clock.advance(0.001)
    await connected(component)


async def test_a_running_stream_follows_no_websocket_redirect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The vendors' clients connect with websockets' own connect: the policy is set on it.
    monkeypatch.setattr(connect, "process_redirect", redirects._FOLLOWED)  # restored after
    async with running() as run:
        await connected(run.component)
        assert connect.process_redirect is redirects._refused


async def test_failures_back_off_exponentially_and_count_reconnects() -> None:
    async with running() as run:
        component, clock = run.component, run.clock
        await connected(component)
        assert component.state is StreamState.CONNECTING
        for delay in (1.0, 2.0, 4.0, 8.0, 8.0):
            await ends_and_waits(component, clock, End.DROPPED, delay)
        assert component.connections == 6
        assert component.last_outcome is End.DROPPED
        assert component.metrics.counter("reconnects").snapshot()["reason=dropped"] == 5


async def test_a_stable_connection_resets_the_backoff_at_its_boundary() -> None:
    async with running() as run:
        component, clock = run.component, run.clock
        await connected(component)
        await ends_and_waits(component, clock, End.DROPPED, 1.0)
        clock.advance(29.999)  # not yet stable
        await ends_and_waits(component, clock, End.DROPPED, 2.0)
        clock.advance(30.0)  # stable: the next failure is a first failure again
        await ends_and_waits(component, clock, End.DROPPED, 1.0)
        assert component.stable_calls == 1


async def test_a_vendor_delay_wins_and_leaves_the_backoff_where_it_was() -> None:
    async with running() as run:
        component, clock = run.component, run.clock
        await connected(component)
        await ends_and_waits(component, clock, End.DROPPED, 1.0)
        await ends_and_waits(component, clock, End.REFUSED, 50.0)
        await ends_and_waits(component, clock, End.DROPPED, 2.0)
        assert component.metrics.counter("reconnects").snapshot()["reason=refused"] == 1


async def test_a_restart_request_reconnects_at_once_with_a_fresh_backoff() -> None:
    async with running() as run:
        component, clock = run.component, run.clock
        await connected(component)
        await ends_and_waits(component, clock, End.DROPPED, 1.0)
        component._request_restart()
        async with asyncio.timeout(5):
            while await component.connects.get() < 3:
                pass
        assert component.last_outcome is Interruption.RESTART
        assert clock.pending_sleepers == 0  # no pause after our own restart
        assert component.metrics.counter("reconnects").total == 1  # not counted as a reconnect
        await ends_and_waits(component, clock, End.DROPPED, 1.0)  # the restart reset the backoff


async def test_stop_streaming_ends_the_connection_and_idles_until_started() -> None:
    async with running(enabled=False) as run:
        component = run.component
        for _ in range(20):  # loop turns, not time: a component that would connect has done so
            await asyncio.sleep(0)
        assert component.pauses.get_nowait() is StreamState.IDLE
        assert component.connections == 0
        component.start_streaming()
        await connected(component)
        started = component.enabled  # (a local: asserting the property would narrow it for mypy)
        assert started
        while not component.pauses.empty():  # the idle pause before the start
            component.pauses.get_nowait()
        component.stop_streaming()
        async with asyncio.timeout(5):
            assert await component.pauses.get() is StreamState.IDLE
        assert component.last_outcome is Interruption.RESTART
        assert not component.enabled
        assert component.connections == 1


async def test_a_stop_during_a_backoff_ends_the_run_without_waiting() -> None:
    async with running() as run:
        await connected(run.component)
        run.component.ends.put_nowait(End.REFUSED)
        async with asyncio.timeout(5):
            await run.clock.wait_for_sleepers(1)
        await run.finish()  # the clock never moved: the stop ended the 50 s pause
        assert run.component.connections == 1


async def test_a_stop_during_a_connection_is_an_interruption() -> None:
    async with running() as run:
        await connected(run.component)
        await run.finish()
        assert run.component.last_outcome is Interruption.STOP
        assert run.component.metrics.counter("reconnects").total == 0


@pytest.mark.parametrize(
    ("closed_for", "waits"), [(90.0, 90.0), (MAX_CLOSED_WAIT_SECONDS * 3, MAX_CLOSED_WAIT_SECONDS)]
)
async def test_while_closed_it_waits_at_most_an_hour_before_asking_again(
    closed_for: float, waits: float
) -> None:
    async with running(closed_for=closed_for) as run:
        component, clock = run.component, run.clock
        async with asyncio.timeout(5):
            await clock.wait_for_sleepers(1)
        assert component.state is StreamState.WAITING_FOR_SESSION
        component.closed_for = 0.0  # the session opens meanwhile
        clock.advance(waits - 0.001)
        assert clock.pending_sleepers == 1
        clock.advance(0.001)
        await connected(component)
        assert component.connections == 1


def delays_of(ends: list[tuple[End | Interruption, float]]) -> list[float]:
    """The delays the base chooses for ``(outcome, lived seconds)`` connections in a row."""
    clock = ManualClock(START)
    component = Scripted(clock)
    delays = []
    for outcome, lived in ends:
        component._backoff.started()
        clock.advance(lived)
        delays.append(component._delay_after(outcome))
    return delays


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([End.DROPPED, End.REFUSED, Interruption.STOP, Interruption.RESTART]),
            st.sampled_from([0.0, 29.0, 30.0, 100.0]),
        ),
        max_size=20,
    )
)
def test_delays_follow_the_model(ends: list[tuple[End | Interruption, float]]) -> None:
    expected: list[float] = []
    failures = 0
    for outcome, lived in ends:
        if isinstance(outcome, Interruption):
            expected.append(0.0)
            continue
        if lived >= 30.0:
            failures = 0
        if outcome is End.REFUSED:
            expected.append(50.0)
            continue
        failures += 1
        expected.append(min(8.0, 2.0 ** (failures - 1)))
    assert delays_of(ends) == expected
