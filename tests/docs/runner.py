"""Runs the Python examples of one Markdown file in a child process (``python runner.py``).

Reads a JSON list of blocks on stdin (``where``, ``path``, ``line``, ``code``, ``continues``)
and executes them in order. Each block gets a fresh namespace unless it ``continues`` the
previous one. Tracebacks point at the Markdown file and line. Like the test suite, the child
may only connect to loopback, so an example can never reach the internet by accident.

A child process per file keeps examples from leaking global state (logging configuration,
event loops, signal handlers) into the test session or into each other's files.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import sys
import traceback
import types
from typing import Any

EXAMPLE_MODULE_NAME = "__doc_example__"


def _loopback(host: object) -> bool:
    if host is None:
        return True
    text = (host.decode() if isinstance(host, bytes) else str(host)).strip().lower()
    if text in {"localhost", "localhost."}:
        return True
    try:
        return ipaddress.ip_address(text.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _guard_network() -> None:
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> None:
        if self.family in {socket.AF_INET, socket.AF_INET6}:
            host = address[0] if isinstance(address, tuple) else address
            if not _loopback(host):
                msg = f"documentation examples may only connect to loopback, not {address!r}"
                raise RuntimeError(msg)
        real_connect(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _loopback(host):
            try:
                ipaddress.ip_address(str(host))
            except ValueError:
                msg = f"documentation examples may only resolve loopback names, not {host!r}"
                raise RuntimeError(msg) from None
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect  # type: ignore[method-assign, assignment]
    socket.getaddrinfo = getaddrinfo


def main() -> int:
    """Run every block; stop at the first failure with its traceback and exit 1."""
    blocks: list[dict[str, Any]] = json.load(sys.stdin)
    _guard_network()
    namespace: dict[str, Any] = {}
    for block in blocks:
        if not block["continues"]:
            # A real module, so code that looks itself up (dataclasses, pickle) finds it.
            module = types.ModuleType(EXAMPLE_MODULE_NAME)
            module.__file__ = block["path"]
            sys.modules[EXAMPLE_MODULE_NAME] = module
            namespace = module.__dict__
        # Pad with blank lines so tracebacks give the line number in the Markdown file.
        source = "\n" * (block["line"] - 1) + block["code"]
        try:
            code = compile(source, block["path"], "exec", dont_inherit=True)
            exec(code, namespace)  # noqa: S102 - our own docs
        except BaseException:
            print(f"the example at {block['where']} failed:", file=sys.stderr)
            traceback.print_exc()
            return 1
        print(f"ok {block['where']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
