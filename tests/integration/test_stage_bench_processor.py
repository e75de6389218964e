"""``bench/processor.py`` runs to its end and counts every event it asks for (a private Redis).

The stage benchmark replays a simulated session far faster than its clock runs, so its later
events are minutes ahead of the clock. When the processor's default future tolerance became
300 s, the benchmark's processor dropped them as bad and the run waited for them until its
600 s timeout. This smoke run is large enough for the session to run past 300 s, asserts the
run ends with every event applied, and asserts nothing of speed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from mdp_testing.redis_server import RedisServer

# steady: the private Redis is for isolation (the bench flushes its database), nothing restarts.
pytestmark = [pytest.mark.integration, pytest.mark.steady, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]


async def bench(redis: RedisServer, *args: str) -> str:
    """Run ``bench/processor.py`` on ``redis`` (database 9) with ``args``; its output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bench" / "processor.py"),
        *args,
        "--redis", redis.url().rsplit("/", 1)[0], "--db", "9",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), timeout=150)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text
    assert "future" not in text, text  # no event dropped ahead of the clock
    return text


async def test_the_processor_bench_applies_every_event_of_a_session_run_ahead(
    private_redis: RedisServer,  # the benchmark flushes its database: never the shared server's
) -> None:
    text = await bench(
        private_redis, "--only", "A", "--symbols", "50", "--events", "20000", "--workers", "1"
    )
    assert "1 worker(s), 20,000 events each" in text
    assert "aggregate: " in text, text


async def test_pairs_run_one_and_two_workers_and_print_each_ratio_and_the_median(
    private_redis: RedisServer,
) -> None:
    text = await bench(
        private_redis, "--only", "A", "--symbols", "20", "--events", "4000", "--pairs", "2"
    )
    runs = [line.split(": ")[1] for line in text.splitlines() if line.startswith("== ")]
    one, two = "1 worker(s), 4,000 events each", "2 worker(s), 4,000 events each"
    assert runs == [one, two, two, one]  # the second pair runs the other way round
    pairs = [line for line in text.splitlines() if line.startswith("-- pair ")]
    assert [line.split(":")[0] for line in pairs] == ["-- pair 1", "-- pair 2"]
    assert all("model 2 w1 / (w2 + r2)" in line for line in pairs), text
    assert "median ratio of 2 pairs" in text, text
