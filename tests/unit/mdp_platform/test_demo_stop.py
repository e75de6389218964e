"""The demo's stop always ends: a step that hangs is abandoned, named, and the rest still run."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import pytest
import structlog

from mdp_platform.demo import bounded_step


async def test_a_hanging_step_is_abandoned_and_named_and_the_steps_after_it_run() -> None:
    ran: list[str] = []
    never = asyncio.Event()

    async def hang() -> None:
        ran.append("hang")
        await never.wait()

    async def close(name: str) -> None:
        ran.append(name)

    with structlog.testing.capture_logs() as logs:
        async with AsyncExitStack() as stack:
            stack.push_async_callback(bounded_step("last", lambda: close("last")))
            stack.push_async_callback(bounded_step("simulators", hang, seconds=0.01))
            stack.push_async_callback(bounded_step("first", lambda: close("first")))
    assert ran == ["first", "hang", "last"]
    assert [log for log in logs if log["log_level"] == "error"] == [
        {
            "event": "demo_stop_step_stuck",
            "step": "simulators",
            "seconds": 0.01,
            "log_level": "error",
        }
    ]


async def test_a_step_that_ends_is_awaited_whole_and_not_reported() -> None:
    done = asyncio.Event()

    async def slow_but_ending() -> None:
        for _ in range(3):
            await asyncio.sleep(0)
        done.set()

    with structlog.testing.capture_logs() as logs:
        await bounded_step("bus", slow_but_ending)()
    assert done.is_set()
    assert logs == []


async def test_a_steps_own_errors_are_raised_not_reported_as_stuck() -> None:
    async def times_out_itself() -> None:
        raise TimeoutError("the step's own")

    async def fails() -> None:
        raise RuntimeError("broken")

    with structlog.testing.capture_logs() as logs:
        with pytest.raises(TimeoutError, match="the step's own"):
            await bounded_step("redis client", times_out_itself)()
        with pytest.raises(RuntimeError, match="broken"):
            await bounded_step("redis client", fails)()
    assert logs == []
