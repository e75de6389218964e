"""The ``mdp-sim`` command line."""

from __future__ import annotations

import asyncio
import io
import os
import re
import shutil
import socket
import subprocess
from datetime import time
from pathlib import Path
from typing import Any

import pytest
from massive import WebSocketClient

from mdp_sim.cli import CANNOT_LISTEN, build_parser, main, serve, sim_config

WAIT = 15.0


@pytest.fixture(autouse=True)
def _loopback_without_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def test_help_lists_both_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "serve" in out
    assert "record" in out


def test_serve_help_documents_the_pacing_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    for option in ("--symbols", "--speed", "--start", "--rate", "--replay", "--key", "--seed"):
        assert option in out


def test_arguments_become_a_sim_config() -> None:
    args = build_parser().parse_args(
        ["serve", "--symbols", "50", "--speed", "max", "--start", "03:59", "--key", "k1"]
    )
    config = sim_config(args)
    assert config.speed is None
    assert config.scenario.symbols == 50
    assert config.scenario.start == time(3, 59)
    assert config.api_key == "k1"
    assert config.host == "127.0.0.1"
    assert sim_config(build_parser().parse_args(["serve", "--speed", "10"])).speed == 10.0


def test_bad_arguments_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--speed", "-1"])
    assert exited.value.code == 2
    for rate in ("0", "-5", "nan", "inf", "fast"):
        with pytest.raises(SystemExit) as exited:
            main(["serve", "--rate", rate])
        assert exited.value.code == 2
        assert "--rate: " in capsys.readouterr().err
    assert sim_config(build_parser().parse_args(["serve", "--rate", "0.5"])).rate == 0.5
    assert main(["serve", "--symbols", "0"]) == 2
    assert "symbols" in capsys.readouterr().err
    assert main(["serve", "--replay", "/nonexistent/recording.jsonl"]) == 2
    assert "no recording" in capsys.readouterr().err


def test_a_taken_port_is_a_clear_error_with_its_own_status(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The command configures process-wide logging onto stderr, which is pytest's capture here.
    monkeypatch.setattr("mdp_sim.cli._configure_logging", lambda: None)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status = main(["serve", "--symbols", "5", "--port", str(port)])
    err = capsys.readouterr().err
    assert status == CANNOT_LISTEN
    assert err.startswith("mdp-sim: cannot listen:")
    assert "address already in use" in err
    assert f"{port}" in err
    assert "Traceback" not in err


def test_record_refuses_a_path_git_would_track(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    git = shutil.which("git")
    if git is None:
        if os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}:
            pytest.fail(
                "git is not installed; CI runs in a git clone, so it must be", pytrace=False
            )
        pytest.skip("git is not installed")
    subprocess.run([git, "init", "-q", str(tmp_path)], check=True)  # noqa: S603
    target = tmp_path / "recorded.jsonl"
    assert main(["record", "--out", str(target), "--key", "k", "--topics", "T.*"]) == 2
    assert "never be committed" in capsys.readouterr().err
    assert not target.exists()


class _Screen(io.StringIO):
    """Captures what ``serve`` prints and signals the first write."""

    def __init__(self) -> None:
        super().__init__()
        self.written = asyncio.Event()

    def write(self, text: str) -> int:
        self.written.set()
        return super().write(text)


async def test_serve_prints_how_to_connect_and_the_printed_key_works() -> None:
    args = build_parser().parse_args(["serve", "--symbols", "5", "--speed", "max"])
    stop, screen = asyncio.Event(), _Screen()
    running = asyncio.create_task(serve(sim_config(args), stop=stop, out=screen))
    await asyncio.wait_for(screen.written.wait(), WAIT)
    text = screen.getvalue()
    key = re.search(r"Massive API key\s+(\S+)", text)
    feed = re.search(r"feed=(127\.0\.0\.1:\d+)", text)
    assert key is not None
    assert feed is not None
    assert "WebSocketClient" in text
    arrived = asyncio.Event()

    async def on_batch(batch: list[Any]) -> None:
        arrived.set()

    client = WebSocketClient(
        api_key=key.group(1), feed=feed.group(1), secure=False, subscriptions=["T.*"]
    )
    session = asyncio.create_task(client.connect(on_batch, proxy=None, max_size=None))
    await asyncio.wait_for(arrived.wait(), WAIT)
    await client.close()
    await asyncio.wait_for(session, WAIT)
    stop.set()
    await asyncio.wait_for(running, WAIT)
