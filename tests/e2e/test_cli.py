"""The console scripts as a user meets them: real processes, real signals, real output.

Every console script answers ``--version``; ``mdp demo`` refuses a closed day or a taken port
in one line naming the option to change, before starting anything; ``mdp-sim serve`` does the
same for a closed day; help texts carry no Sphinx markup and show non-secret defaults; and a
Ctrl-C (SIGINT to the demo's whole process group, as a terminal sends it) stops the demo with
exit code 0 and nothing on stderr: the embedded redis-server, in its own process group, is
stopped last by the demo rather than killed first by the signal.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
SCRIPTS = {
    "mdp": "mdp-platform",
    "mdp-sim": "mdp-sim",
    "mdp-listener": "mdp-listener",
    "mdp-news-listener": "mdp-news-listener",
    "mdp-processor": "mdp-processor",
    "mdp-news-processor": "mdp-news-processor",
    "mdp-scanner": "mdp-scanner",
    "mdp-wds": "mdp-wds",
    "mdp-scp": "mdp-scp",
}
#: Generous: a loaded 2-core CI machine; the tests assert outcomes, never durations.
TIMEOUT_SECONDS = 90


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MDP_")}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost,::1"
    env["PYTHONWARNINGS"] = "default"  # a warning printed on the way out must show up here
    return env


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own console scripts
        [str(BIN / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        env=_env(),
        stdin=subprocess.DEVNULL,
        check=False,
    )


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_every_console_script_answers_version(script: str) -> None:
    from importlib.metadata import version

    done = _run(script, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{script} {version(SCRIPTS[script])}"


@pytest.mark.parametrize(
    "command",
    [
        ["mdp", "demo", "--help"],
        ["mdp-sim", "serve", "--help"],
        *[[script, "--help"] for script in sorted(SCRIPTS) if script not in ("mdp", "mdp-sim")],
    ],
)
def test_help_has_no_markup_and_shows_non_secret_defaults(command: list[str]) -> None:
    done = _run(*command)
    assert done.returncode == 0, done.stderr
    assert not re.search(r":[a-z]+:`|``", done.stdout), done.stdout
    assert "***" not in done.stdout


def test_the_demo_help_says_which_redis_databases_it_uses() -> None:
    text = " ".join(_run("mdp", "demo", "--help").stdout.split())
    assert "database N (default 0)" in text
    assert "N+1" in text
    assert "valid until the demo stops" in text


def test_a_closed_day_is_one_line_naming_the_option_and_the_nearest_days() -> None:
    done = _run("mdp", "demo", "--day", "2026-12-05", "--port", "0", "--wds-port", "0")
    assert done.returncode == 2  # a usage error
    errors = done.stderr.strip().splitlines()
    assert errors == [
        "mdp demo: could not start: --day 2026-12-05 is not a trading day (a Saturday); "
        "the nearest are 2026-12-04 and 2026-12-07"
    ]
    sim = _run("mdp-sim", "serve", "--day", "2026-11-26")
    assert sim.returncode == 2
    assert sim.stderr.strip().splitlines() == [
        "mdp-sim: 2026-11-26 is not a trading day (Thanksgiving Day); "
        "the nearest are 2026-11-25 and 2026-11-27"
    ]


@pytest.mark.parametrize("option", ["--port", "--wds-port"])
def test_a_taken_port_is_one_line_naming_the_option(option: str, taken_port: int) -> None:
    other = "--wds-port" if option == "--port" else "--port"
    done = _run("mdp", "demo", option, str(taken_port), other, "0", "--symbols", "20")
    assert done.returncode == 2
    errors = done.stderr.strip().splitlines()
    assert len(errors) == 1, done.stderr
    assert f"port {taken_port} on 127.0.0.1 is in use; choose another with {option}" in errors[0]
    assert "Traceback" not in done.stdout + done.stderr


def test_ctrl_c_stops_the_demo_cleanly() -> None:
    lines: list[str] = []
    started = threading.Event()
    with subprocess.Popen(  # noqa: S603 - our own console script
        [str(BIN / "mdp"), "demo", "--port", "0", "--wds-port", "0", "--symbols", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=_env(),
        start_new_session=True,  # its own group, which the test signals like a terminal
    ) as demo:

        def read() -> None:
            assert demo.stdout is not None
            for line in demo.stdout:
                lines.append(line)
                if "Ctrl-C stops everything" in line:
                    started.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            assert started.wait(TIMEOUT_SECONDS), "".join(lines)
            children = _children(demo.pid)
            os.killpg(demo.pid, signal.SIGINT)
            demo.wait(TIMEOUT_SECONDS)
            reader.join(TIMEOUT_SECONDS)
            assert demo.stderr is not None
            stderr = demo.stderr.read()
        finally:
            if demo.poll() is None:
                demo.kill()
    assert demo.returncode == 0
    assert stderr == ""
    # Nothing logged on the way out (warnings would come between these lines).
    assert lines[-3:] == ["\n", "stopping ...\n", "stopped.\n"], lines[-6:]
    # The embedded redis-server (when installed) was stopped by the demo, not left behind.
    for pid in children:
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid), f"child {pid} still runs"


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _zombie(pid: int) -> bool:
    try:
        return (Path(f"/proc/{pid}") / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
