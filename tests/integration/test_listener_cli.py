"""The ``mdp-listener`` entry point as a process: configuration errors and a refused key."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator

import aio_pika
import pytest

from mdp_queues import Topology
from mdp_runtime import ExitCode
from mdp_sim.scenario import ScenarioConfig
from mdp_sim.server import SimConfig, SimServers


@pytest.fixture
async def process_prefix(amqp_url: str, mdq_prefix: str) -> AsyncIterator[str]:
    """The test prefix; queues the child process declared are deleted here (it is another
    process, so the ``mdq_prefix`` fixture cannot see them)."""
    yield mdq_prefix
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        for spec in Topology(prefix=mdq_prefix).queues:
            channel = await connection.channel()
            with contextlib.suppress(aio_pika.exceptions.AMQPError):
                await channel.queue_delete(spec.name)
            with contextlib.suppress(aio_pika.exceptions.AMQPError, RuntimeError):
                await channel.close()


async def run_listener(env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mdp_listener",
        env={**os.environ, "NO_PROXY": "127.0.0.1,localhost", **env},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        _, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def test_a_refused_key_exits_77_with_a_clear_message(
    amqp_url: str, process_prefix: str
) -> None:
    config = SimConfig(speed=1.0, scenario=ScenarioConfig(symbols=10, news_per_hour=0.0))
    async with SimServers(config) as sim:
        code, stderr = await run_listener(
            {
                "MASSIVE_API_KEY": "wrong-key",
                "MDP_MASSIVE_FEED": sim.massive_feed,
                "MDP_MASSIVE_SECURE": "false",
                "MDP_LISTENER_ALWAYS_ON": "true",
                "MDP_LISTENER_HEARTBEAT": "false",
                "MDP_HEALTH_PORT": "0",
                "MDP_AMQP_URL": amqp_url,
                "MDP_MDQ_PREFIX": process_prefix,
                "MDP_LOG_FORMAT": "json",
            }
        )
    assert code == ExitCode.AUTH
    assert "refused the API key" in stderr


async def test_bad_configuration_exits_78_naming_the_variable() -> None:
    code, stderr = await run_listener(
        {"MASSIVE_API_KEY": "k", "MDP_LISTENER_BATCH_EVENTS": "many", "MDP_HEALTH_PORT": "0"}
    )
    assert code == ExitCode.CONFIG
    assert "MDP_LISTENER_BATCH_EVENTS" in stderr
