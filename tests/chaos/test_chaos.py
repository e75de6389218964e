"""The chaos suite, short version: every kind of fault once, on private servers (``mdp chaos``).

It starts its own RabbitMQ node and ``redis-server`` (never the shared ones) and the pipeline as
separate processes, so it needs both server binaries; it is skipped without them, except in CI.
The full run is ``mdp chaos`` (see docs/operations.md).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from mdp_platform.chaos import run_chaos

_SERVERS = shutil.which("redis-server") is not None and (
    Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists() or shutil.which("rabbitmq-server")
)


@pytest.mark.slow
@pytest.mark.timeout(480)  # about 80 s alone, up to three minutes on a busy machine
@pytest.mark.skipif(
    not _SERVERS and not os.environ.get("CI"), reason="needs redis-server and rabbitmq-server"
)
async def test_the_pipeline_heals_from_every_fault_and_counts_its_losses() -> None:
    report = await run_chaos(short=True)
    print(report.table())  # shown with -s, and in the failure below
    assert report.ok, report.table()
    names = [result.name for result in report.results]
    assert len(names) == 8, names
