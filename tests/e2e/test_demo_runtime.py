"""The demo follows the admin page's runtime orders like the services do (fakeredis store).

An order written to the control hash (what ``POST /api/admin/runtime/...`` does) pauses the
in-process processor and scanner and drains the WDS within the one-second poll; the opposite
order undoes each. Waits are on the components' own state, with a timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from mdp_cache.control import Desired, write_desired
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


async def until(check: Callable[[], bool]) -> None:
    """The demo applies orders on its own poll: the state is re-read until it holds."""
    async with asyncio.timeout(20):
        while not check():  # noqa: ASYNC110 - the order is applied by a polling task
            await asyncio.sleep(0.05)


async def test_the_demo_pauses_resumes_and_drains_on_order(demo: Demo) -> None:
    assert demo.mdc is not None
    assert demo.processor is not None
    assert demo.scanner is not None
    processor, scanner = demo.processor, demo.scanner
    for component, state in (
        ("processor", "paused"),
        ("scanner", "paused"),
        ("widget-service", "draining"),
    ):
        await write_desired(demo.mdc, component, Desired(state, "admin", 1_000))  # type: ignore[arg-type]
    await until(lambda: processor.paused and scanner.paused)
    await until(lambda: demo.wds is not None and demo.wds.draining)
    for component in ("processor", "scanner", "widget-service"):
        await write_desired(demo.mdc, component, Desired("running", "admin", 2_000))
    await until(lambda: not processor.paused and not scanner.paused)
    await until(lambda: demo.wds is not None and not demo.wds.draining)
    assert processor.stats.pauses == processor.stats.resumes == 1
