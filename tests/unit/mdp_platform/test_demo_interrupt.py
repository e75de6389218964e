"""Ctrl-C stops the demo at any moment: while it imports, while it starts, once it runs."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest

from mdp_platform import demo as demo_module
from mdp_platform.demo import DemoOptions, DemoUsageError


class _SlowStart:
    """A demo whose start waits until released; records what happened to it."""

    entered: asyncio.Event  # set by the first start (one per test: see the fixture)

    def __init__(self, options: DemoOptions, progress: object = None) -> None:
        self.release = asyncio.Event()
        self.events: list[str] = []
        self.fail: BaseException | None = None
        _made.append(self)

    async def start(self) -> None:
        self.events.append("start")
        self.entered.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.events.append("start cancelled")  # Demo.start stops what it began, here
            raise
        if self.fail is not None:
            raise self.fail
        self.events.append("started")

    async def stop(self) -> None:
        self.events.append("stop")

    @property
    def info(self) -> object:
        raise AssertionError("no banner for a demo that never started")


_made: list[_SlowStart] = []


@pytest.fixture
async def slow_demo(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    monkeypatch.setattr(demo_module, "Demo", _SlowStart)
    monkeypatch.setattr(_SlowStart, "entered", asyncio.Event(), raising=False)
    _made.clear()
    yield
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):  # the demo's own handlers, installed by _run
        loop.remove_signal_handler(signum)


async def _started() -> _SlowStart:
    await _SlowStart.entered.wait()
    return _made[0]


async def _signal_once_started(signum: signal.Signals) -> None:
    await _started()
    os.kill(os.getpid(), signum)


@pytest.mark.usefixtures("slow_demo")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_a_stop_during_the_start_abandons_it_at_once(
    signum: signal.Signals, capsys: pytest.CaptureFixture[str]
) -> None:
    sender = asyncio.create_task(_signal_once_started(signum))
    # The start is never released: the old code (the start awaited whole, then the signal)
    # waits forever, so the bound only keeps a regression from hanging the suite.
    code = await asyncio.wait_for(demo_module._run(DemoOptions(), None), 30)
    await sender
    assert code == 0
    assert _made[0].events == ["start", "start cancelled"]
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "starting the mdp demo ...",
        "stopping ...",
        "stopped before the start completed.",
    ]


@pytest.mark.usefixtures("slow_demo")
@pytest.mark.parametrize(
    ("error", "code"), [(DemoUsageError("--day is closed"), 2), (OSError("no redis"), 69)]
)
async def test_a_failed_start_still_says_why_with_its_status(
    error: Exception, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """A regression guard (the old code did the same): the start's errors still reach the user."""

    async def fail_soon() -> None:
        demo = await _started()
        demo.fail = error
        demo.release.set()

    failing = asyncio.create_task(fail_soon())
    assert await demo_module._run(DemoOptions(), None) == code
    await failing
    assert _made[0].events == ["start"]
    assert capsys.readouterr().err == f"mdp demo: could not start: {error}\n"


def test_ctrl_c_before_a_command_takes_over_sigint_dies_of_it_without_a_traceback() -> None:
    # In a child: the command re-raises SIGINT on itself, as Python does, so a shell loop
    # around it stops too.
    script = (
        "from mdp_platform import __main__ as cli\n"
        "def interrupted(args):\n"
        "    raise KeyboardInterrupt\n"
        "cli._demo = interrupted  # build_parser binds it when called\n"
        "cli.main(['demo'])\n"
    )
    done = subprocess.run(  # noqa: S603 - this interpreter on a script written here
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == -signal.SIGINT
    assert done.stderr == ""
    assert done.stdout == ""
