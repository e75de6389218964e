"""A bench or chaos component whose port was taken before it bound it starts again on a fresh one.

The component here is a stand-in console script that behaves as ``run_service`` does: it exits
with ``ExitCode.OSERR`` (71) when its port is taken and serves ``/readyz`` otherwise.
"""

from __future__ import annotations

import http.server
import sys
import threading
from pathlib import Path

import aiohttp

from mdp_platform.bench.services import Service
from mdp_runtime.lifecycle import ExitCode

_SCRIPT = f"""#!{sys.executable}
import http.server, os, sys, time
port = int(os.environ["MDP_HEALTH_PORT"])
assert os.environ["MDP_WDS_PORT"] == str(port), "both of its own ports move"
time.sleep(float(os.environ.get("IMPORT_SECONDS", "0")))  # a service takes a moment to import


class Ready(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/readyz" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


try:
    server = http.server.HTTPServer(("127.0.0.1", port), Ready)
except OSError:
    print("cannot listen", flush=True)
    sys.exit({int(ExitCode.OSERR)})
print("listening", port, flush=True)
server.serve_forever()
"""


def _service(tmp_path: Path, port: int, script: str = _SCRIPT) -> Service:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    path = bindir / "stand-in"
    path.write_text(script)
    path.chmod(0o755)
    # MDP_OTHER_PORT only happens to hold the same number: not the component's own port.
    env = {"MDP_HEALTH_PORT": str(port), "MDP_WDS_PORT": str(port), "MDP_OTHER_PORT": str(port)}
    return Service("stand-in", "stand-in", "http.server", env, port, tmp_path / "log")


async def _ready(service: Service, tmp_path: Path) -> None:
    # Bounded probes: the taken port accepts and never answers.
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as http:
        await service.start(tmp_path / "bin")
        try:
            await service.wait_ready(http, within=30)
        finally:
            await service.stop()


async def test_a_taken_port_is_replaced_and_every_variable_that_held_it_moves(
    tmp_path: Path, taken_port: int
) -> None:
    service = _service(tmp_path, taken_port)
    await _ready(service, tmp_path)
    assert service.missing is None
    assert service.port != taken_port
    assert service.env == {
        "MDP_HEALTH_PORT": str(service.port),
        "MDP_WDS_PORT": str(service.port),
        "MDP_OTHER_PORT": str(taken_port),
    }
    assert service.port_retries == 2
    log = (tmp_path / "log").read_text().splitlines()
    assert log == ["cannot listen", f"listening {service.port}"]  # both starts kept


class _Foreign(http.server.BaseHTTPRequestHandler):
    """Another run's component: ready, on the port this one was given."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        del format, args


async def test_a_foreign_server_answering_ready_on_the_port_is_not_taken_for_it(
    tmp_path: Path,
) -> None:
    foreign = http.server.HTTPServer(("127.0.0.1", 0), _Foreign)
    serving = threading.Thread(target=foreign.serve_forever, daemon=True)
    serving.start()
    try:
        port = foreign.server_address[1]
        service = _service(tmp_path, port)
        service.env["IMPORT_SECONDS"] = "1"  # the foreign server answers while this one starts
        await _ready(service, tmp_path)
    finally:
        foreign.shutdown()
        foreign.server_close()
    assert service.missing is None
    assert service.port != port
    assert (tmp_path / "log").read_text().splitlines() == [
        "cannot listen",
        f"listening {service.port}",
    ]


async def test_any_other_exit_still_marks_the_component_missing(tmp_path: Path) -> None:
    """A regression guard: only the exit of a taken port starts a component again."""

    service = _service(tmp_path, 1, script=f"#!{sys.executable}\nimport sys\nsys.exit(78)\n")
    await _ready(service, tmp_path)
    assert service.missing is not None
    assert service.missing.startswith("stand-in exited with 78; see ")
    assert service.port_retries == 3
