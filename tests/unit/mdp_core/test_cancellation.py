"""A task whose first cancellation is lost (Python 3.11's wait_for) is still stopped."""

from __future__ import annotations

import asyncio

import pytest

from mdp_core.cancellation import cancel_until_done


async def test_a_task_that_swallows_a_cancel_is_cancelled_again_until_it_ends() -> None:
    cancels = 0
    forever = asyncio.Event()

    async def swallows_one() -> None:
        nonlocal cancels
        try:
            await forever.wait()
        except asyncio.CancelledError:
            cancels += 1  # lost here, as wait_for loses it when its inner result is ready
        try:
            await forever.wait()
        except asyncio.CancelledError:
            cancels += 1
            raise

    task = asyncio.create_task(swallows_one())
    await asyncio.sleep(0)  # let it start waiting
    # A single cancel leaves it running for ever: the bound only keeps a regression finite.
    await asyncio.wait_for(cancel_until_done(task, every=0.01), 10)
    assert task.cancelled()
    assert cancels == 2


async def test_a_well_behaved_task_is_cancelled_once_and_keeps_its_outcome() -> None:
    cancels = 0

    async def cleans_up_and_fails() -> None:
        nonlocal cancels
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancels += 1
            raise RuntimeError("its own error, left for the caller") from None

    task = asyncio.create_task(cleans_up_and_fails())
    await asyncio.sleep(0)
    await cancel_until_done(task)
    assert cancels == 1
    with pytest.raises(RuntimeError, match="its own error"):
        task.result()


async def test_a_task_already_done_is_left_alone() -> None:
    async def quick() -> int:
        return 7

    task = asyncio.create_task(quick())
    await task
    await cancel_until_done(task)
    assert task.result() == 7


async def test_an_error_is_left_in_the_task_and_marked_retrieved() -> None:
    async def fails_when_cancelled() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise RuntimeError("while stopping") from None

    task = asyncio.create_task(fails_when_cancelled())
    await asyncio.sleep(0)
    await cancel_until_done(task)
    assert task._log_traceback is False  # nothing reported at collection
    assert isinstance(task.exception(), RuntimeError)
