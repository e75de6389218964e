"""The chaos run moves its simulator and its Redis to fresh ports when one picked was taken."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from mdp_platform._chaos_infra import ChaosError, PrivateRedis
from mdp_platform.chaos import Pipeline


async def _start_sim(pipeline: Pipeline) -> bool:
    """Start the pipeline's simulator alone; whether it serves its control API then."""
    pipeline.logs.mkdir(parents=True)
    # Bounded probes, as the pipeline's own: the taken port accepts and never answers.
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as http:
        pipeline.http = http
        try:
            await pipeline._start_sim()
            return await pipeline._sim_up()
        finally:
            pipeline.http = None
            await _kill(pipeline.sim)


async def _kill(sim: asyncio.subprocess.Process | None) -> None:
    if sim is not None and sim.returncode is None:
        os.killpg(sim.pid, signal.SIGKILL)
        await sim.wait()


async def test_a_port_taken_before_the_simulator_binds_it_is_replaced(
    tmp_path: Path, taken_port: int
) -> None:
    pipeline = Pipeline(tmp_path, rate=100)
    pipeline.sim_control = taken_port
    assert await _start_sim(pipeline)  # serving, on the ports the pipeline holds now
    assert pipeline.sim_control != taken_port


async def test_any_other_exit_of_the_simulator_is_reported_with_its_status(
    tmp_path: Path,
) -> None:
    pipeline = Pipeline(tmp_path, rate=-5)  # the simulator refuses a negative rate
    with pytest.raises(ChaosError, match=r"the simulator exited with 2; see .*sim"):
        await _start_sim(pipeline)


async def test_the_private_redis_moves_off_a_port_another_redis_answers_on(
    tmp_path: Path,
) -> None:
    other, mine = PrivateRedis(tmp_path / "other"), PrivateRedis(tmp_path / "mine")
    await other.start()
    mine.port = other.port
    try:
        await mine.start()
        assert mine.port != other.port
        assert mine.process is not None
        client = aioredis.from_url(mine.url(0))
        try:
            assert int((await client.info("server"))["process_id"]) == mine.process.pid
        finally:
            await client.aclose()
        port = mine.port
        await mine.kill()
        await mine.start()  # a restart keeps its port
        assert mine.port == port
    finally:
        await mine.kill()
        await other.kill()
