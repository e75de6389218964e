from __future__ import annotations

import asyncio
import errno
import signal
import socket
import sys
from pathlib import Path

import pytest

from mdp_runtime import (
    AuthError,
    ConfigError,
    ExitCode,
    ServiceExit,
    UnavailableError,
    run_service,
)

WAIT = 30.0  # generous upper bound for a subprocess step on a loaded machine; never reached

_SERVICE = """
import asyncio
import sys

from mdp_runtime import run_service

mode, grace = sys.argv[1], float(sys.argv[2])


async def main(stop: asyncio.Event) -> int:
    print("ready", flush=True)
    try:
        await stop.wait()
        print("stop seen", flush=True)
        if mode == "stubborn":
            await asyncio.Event().wait()
        if mode == "deaf":
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                print("cancel lost", flush=True)  # as a library's wait_for can lose it on 3.11
            await asyncio.Event().wait()
        print("drained", flush=True)
        return 0
    finally:
        print("main finished", flush=True)


sys.exit(run_service(main, name="probe", grace_seconds=grace))
"""


class Service:
    """A subprocess running ``run_service`` that the test can signal and read."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []

    async def wait_line(self, expected: str) -> None:
        assert self.process.stdout is not None
        while expected not in self.lines:
            raw = await asyncio.wait_for(self.process.stdout.readline(), WAIT)
            assert raw, f"the service ended before printing {expected!r}: {self.lines}"
            self.lines.append(raw.decode().strip())

    async def exit_code(self) -> int:
        assert self.process.stdout is not None
        rest = await asyncio.wait_for(self.process.stdout.read(), WAIT)
        self.lines.extend(line.strip() for line in rest.decode().splitlines())
        return await asyncio.wait_for(self.process.wait(), WAIT)


async def _start(tmp_path: Path, mode: str, grace: float) -> Service:
    script = tmp_path / "service.py"
    script.write_text(_SERVICE)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        mode,
        str(grace),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    service = Service(process)
    await service.wait_line("ready")
    return service


async def test_sigterm_sets_the_stop_event_and_main_returns_cleanly(tmp_path: Path) -> None:
    service = await _start(tmp_path, "graceful", grace=60)
    service.process.send_signal(signal.SIGTERM)
    assert await service.exit_code() == 0
    assert {"stop seen", "drained", "main finished"} <= set(service.lines)
    assert not any("Traceback" in line for line in service.lines)


async def test_a_second_signal_cancels_main_hard(tmp_path: Path) -> None:
    service = await _start(tmp_path, "stubborn", grace=600)
    service.process.send_signal(signal.SIGTERM)
    await service.wait_line("stop seen")
    service.process.send_signal(signal.SIGINT)
    assert await service.exit_code() == 128 + signal.SIGTERM
    assert "main finished" in service.lines  # cancellation ran main's cleanup
    assert "drained" not in service.lines


async def test_main_is_cancelled_when_the_grace_period_elapses(tmp_path: Path) -> None:
    service = await _start(tmp_path, "stubborn", grace=0.1)
    service.process.send_signal(signal.SIGTERM)
    assert await service.exit_code() == 128 + signal.SIGTERM
    assert "main finished" in service.lines
    assert "drained" not in service.lines


async def test_a_hard_stop_cancels_again_when_main_loses_the_cancel(tmp_path: Path) -> None:
    service = await _start(tmp_path, "deaf", grace=0.1)
    service.process.send_signal(signal.SIGTERM)
    assert await service.exit_code() == 128 + signal.SIGTERM
    assert {"cancel lost", "main finished"} <= set(service.lines)
    assert "drained" not in service.lines


def test_the_return_value_of_main_is_the_exit_code() -> None:
    async def three(stop: asyncio.Event) -> int:
        del stop
        return 3

    async def nothing(stop: asyncio.Event) -> None:
        del stop

    assert run_service(three, name="probe") == 3
    assert run_service(nothing, name="probe") == ExitCode.OK


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ConfigError("MDP_FEED must be one of delayed, realtime;\n it was 'x'"), 78),
        (AuthError("Massive refused the API key"), 77),
        (UnavailableError("RabbitMQ at 127.0.0.1:5672 is unreachable"), 69),
        (ServiceExit("custom", code=12), 12),
    ],
)
def test_expected_errors_exit_with_their_code_and_one_line(
    capsys: pytest.CaptureFixture[str], error: ServiceExit, code: int
) -> None:
    async def failing(stop: asyncio.Event) -> None:
        del stop
        raise error

    assert run_service(failing, name="probe") == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err == f"probe: {' '.join(error.message.split())}\n"
    assert "Traceback" not in err


def test_a_config_error_inside_a_task_group_still_exits_78(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def failing(stop: asyncio.Event) -> None:
        async def bad_settings() -> None:
            raise ConfigError("MDP_PORT must be an integer")

        async with asyncio.TaskGroup() as group:
            group.create_task(bad_settings())
            group.create_task(stop.wait())

    assert run_service(failing, name="probe") == ExitCode.CONFIG
    assert capsys.readouterr().err == "probe: MDP_PORT must be an integer\n"


def test_an_unexpected_error_exits_70() -> None:
    async def crashing(stop: asyncio.Event) -> None:
        del stop
        raise ZeroDivisionError

    assert run_service(crashing, name="probe") == ExitCode.SOFTWARE


def test_a_port_taken_by_another_process_exits_71_with_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        async def listening(stop: asyncio.Event) -> None:
            async with asyncio.TaskGroup() as group:  # found inside a group too
                group.create_task(asyncio.start_server(lambda r, w: None, "127.0.0.1", port))
                group.create_task(stop.wait())

        assert run_service(listening, name="probe") == ExitCode.OSERR
    err = capsys.readouterr().err
    assert err.startswith("probe: cannot listen: ")
    assert f"('127.0.0.1', {port}): address already in use" in err
    assert err.count("\n") == 1


def test_a_taken_port_beside_a_crash_is_still_a_crash(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def both(stop: asyncio.Event) -> None:
        del stop

        async def taken() -> None:
            raise OSError(errno.EADDRINUSE, "address already in use")

        async def crashed() -> None:
            raise ZeroDivisionError

        async with asyncio.TaskGroup() as group:
            group.create_task(taken())
            group.create_task(crashed())

    assert run_service(both, name="probe") == ExitCode.SOFTWARE
    assert "cannot listen" not in capsys.readouterr().err


def test_other_os_errors_are_still_bugs_with_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A regression guard (the old code did the same): only EADDRINUSE is the environment's."""

    async def refused(stop: asyncio.Event) -> None:
        del stop
        raise ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed")

    assert run_service(refused, name="probe") == ExitCode.SOFTWARE
    assert "cannot listen" not in capsys.readouterr().err


def test_exit_code_values_follow_sysexits() -> None:
    assert int(ExitCode.OSERR) == 71
    assert (ExitCode.OK, ExitCode.UNAVAILABLE, ExitCode.SOFTWARE) == (0, 69, 70)
    assert (ExitCode.AUTH, ExitCode.CONFIG) == (77, 78)


def test_a_negative_grace_period_is_refused() -> None:
    async def nothing(stop: asyncio.Event) -> None:
        del stop

    with pytest.raises(ValueError, match="grace_seconds"):
        run_service(nothing, name="probe", grace_seconds=-1)
