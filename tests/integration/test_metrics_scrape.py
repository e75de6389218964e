"""Scrape every service as Prometheus would: each documented family is there, typed, described.

Every component runs as its own process from its entry point (``python -m <package>``), on
the simulator, the real RabbitMQ and the real Redis: the listener, the news listener, the
processor with two worker processes, the news processor, the scanner, the WDS and the SCP.
Each ``/metrics`` is parsed with ``prometheus_client``'s parser and compared with the
service's catalogue (the source of ``docs/reference/metrics.md``). Market data flows while
the test waits, so the processor's figures are the sum over its workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import aio_pika
import aiohttp
import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from mdp_core.ports import free_port as _free_port  # below the ephemeral range
from mdp_platform.reference import METRIC_CATALOGUES
from mdp_queues import Topology
from mdp_runtime.metrics import Family
from mdp_sim.scenario import ScenarioConfig
from mdp_sim.server import SimConfig, SimServers

WAIT = 90.0  # seven interpreters and two workers starting on a shared two-core machine


@dataclass
class Service:
    module: str
    prefix: str
    port: int
    env: dict[str, str]
    args: tuple[str, ...] = ()


@pytest.fixture
async def process_prefix(amqp_url: str, mdq_prefix: str) -> AsyncIterator[str]:
    """The queues the child processes declare are deleted here (``mdq_prefix`` cannot see them)."""
    yield mdq_prefix
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        for spec in Topology(prefix=mdq_prefix).queues:
            channel = await connection.channel()
            with contextlib.suppress(aio_pika.exceptions.AMQPError):
                await channel.queue_delete(spec.name)
            with contextlib.suppress(aio_pika.exceptions.AMQPError, RuntimeError):
                await channel.close()


def _catalogue(prefix: str) -> tuple[Family, ...]:
    module = next(module for _, p, module, _ in METRIC_CATALOGUES if p == prefix)
    families: tuple[Family, ...] = __import__(module, fromlist=["FAMILIES"]).FAMILIES
    return families


async def _scrape(http: aiohttp.ClientSession, port: int) -> dict[str, Metric]:
    async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await response.text()
    return {family.name: family for family in text_string_to_metric_families(text)}


async def _until(
    http: aiohttp.ClientSession, port: int, check: Callable[[dict[str, Metric]], bool]
) -> dict[str, Metric]:
    """Scrape until ``check`` holds (the service is up and its figures moved), within WAIT.

    A timeout fails with the last page's family names, so a family that never appears is
    named rather than reported as a bare timeout.
    """
    families: dict[str, Metric] = {}
    try:
        async with asyncio.timeout(WAIT):
            while True:
                with contextlib.suppress(aiohttp.ClientError):
                    families = await _scrape(http, port)
                    if check(families):
                        return families
                await asyncio.sleep(0.2)  # polling a predicate over HTTP, not a timing assumption
    except TimeoutError:
        pytest.fail(f"port {port}: not ready within {WAIT} s; last page served {sorted(families)}")


def _documented(prefix: str) -> dict[str, str]:
    """The families a service's catalogue promises, by name, with their kind.

    ``build_info`` is checked apart.
    """
    return {
        f"{prefix}_{family.name}": family.kind
        for family in _catalogue(prefix)
        if family.name != "build_info"
    }


def _complete(expected: Collection[str]) -> Callable[[dict[str, Metric]], bool]:
    """A page holds every ``expected`` family."""
    return lambda families: all(name in families for name in expected)


def _total(families: dict[str, Metric], name: str) -> float:
    family = families.get(name)
    if family is None:
        return 0.0
    return sum(s.value for s in family.samples if s.name in {name, f"{name}_total"})


def _histogram_count(families: dict[str, Metric], name: str) -> float:
    family = families.get(name)
    return sum(s.value for s in family.samples if s.name == f"{name}_count") if family else 0.0


async def test_every_service_serves_its_documented_families_typed_and_described(
    amqp_url: str, redis_db_url: str, process_prefix: str, tmp_path: Path
) -> None:
    config = SimConfig(speed=1.0, scenario=ScenarioConfig(symbols=20, news_per_hour=3_600.0))
    async with SimServers(config) as sim:
        common = {
            "MDP_AMQP_URL": amqp_url,
            "MDP_MDQ_PREFIX": process_prefix,
            "MDP_MDC_REDIS_URL": redis_db_url,
            "MDP_WDC_REDIS_URL": redis_db_url,
            "MDP_HEALTH_HOST": "127.0.0.1",
            "MDP_LOG_FORMAT": "json",
            "MDP_LOG_LEVEL": "WARNING",
            "NO_PROXY": "127.0.0.1,localhost",
        }
        wds_port, scp_port = _free_port(), _free_port()
        services = [
            Service("mdp_listener", "mdp_listener", _free_port(), {
                "MASSIVE_API_KEY": sim.api_key, "MDP_MASSIVE_FEED": sim.massive_feed,
                "MDP_MASSIVE_SECURE": "false", "MDP_LISTENER_ALWAYS_ON": "true",
            }),
            Service("mdp_news_listener", "mdp_news_listener", _free_port(), {
                "FINLIGHT_API_KEY": sim.finlight_api_key,
                "MDP_FINLIGHT_WSS_URL": sim.finlight_wss_url,
                "MDP_FINLIGHT_BASE_URL": sim.finlight_base_url,
            }),
            # The simulator plays the trading day from its start time, hours ahead of the
            # wall clock early in the day: the default 300 s would drop every event.
            Service(
                "mdp_processor",
                "mdp_processor",
                _free_port(),
                {"MDP_WORKERS": "2", "MDP_FUTURE_TOLERANCE_SECONDS": "86400"},
            ),
            Service("mdp_news_processor", "mdp_news_processor", _free_port(), {}),
            Service("mdp_scanner", "mdp_scanner", _free_port(), {}),
            Service("mdp_wds", "mdp_wds", wds_port, {
                "MDP_WDS_HOST": "127.0.0.1", "MDP_WDS_PORT": str(wds_port),
                "MDP_WDS_TOKEN_SECRET": "scrape-test-secret",
            }),
            Service("mdp_scp", "mdp_scp", scp_port, {
                "MDP_SCP_HOST": "127.0.0.1", "MDP_SCP_PORT": str(scp_port),
                "MDP_WDS_TOKEN_SECRET": "scrape-test-secret",
                "MDP_SCP_WDS_URL": f"ws://127.0.0.1:{wds_port}/ws",
                "MDP_SCP_DATABASE_URL": f"sqlite:///{tmp_path / 'scp.sqlite3'}",
            }, ("serve",)),
        ]  # fmt: skip
        processes: list[asyncio.subprocess.Process] = []
        logs: list[IO[bytes]] = []
        try:
            for service in services:
                log = (tmp_path / f"{service.module}.log").open("wb")
                logs.append(log)
                processes.append(
                    await asyncio.create_subprocess_exec(
                        sys.executable,
                        "-m",
                        service.module,
                        *service.args,
                        env={
                            **os.environ,
                            **common,
                            "MDP_HEALTH_PORT": str(service.port),
                            **service.env,
                        },
                        stdout=log,
                        stderr=log,
                    )
                )
            async with aiohttp.ClientSession() as http:
                scraped: dict[str, dict[str, Metric]] = {}
                # A service registers some families as its clients start (the news
                # listener's once its stream opens): wait until the page is complete.
                for service in services:
                    scraped[service.prefix] = await _until(
                        http, service.port, _complete(_documented(service.prefix).keys())
                    )
                # Data flows end to end; the processor's figures are its workers' sum.
                scraped["mdp_listener"] = await _until(
                    http, services[0].port,
                    lambda f: _total(f, "mdp_listener_events_received") > 0
                    and _histogram_count(f, "mdp_listener_lag_seconds") > 0,
                )  # fmt: skip
                scraped["mdp_processor"] = await _until(
                    http, services[2].port,
                    lambda f: _total(f, "mdp_processor_events_applied") > 0
                    and _histogram_count(f, "mdp_processor_event_to_write_seconds") > 0
                    and _total(f, "mdp_processor_workers_alive") == 2,
                )  # fmt: skip
                scraped["mdp_wds"] = await _scrape(http, wds_port)
                scraped["mdp_scp"] = await _scrape(http, scp_port)
        finally:
            for process in processes:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
            for process in processes:
                async with asyncio.timeout(30):
                    await process.wait()
            for handle in logs:
                handle.close()

    for _, prefix, _, _ in METRIC_CATALOGUES:
        families = scraped[prefix]
        documented = _documented(prefix)
        served = {name: family.type for name, family in families.items()}
        missing = {name: kind for name, kind in documented.items() if served.get(name) != kind}
        assert not missing, f"{prefix}: documented families missing or mistyped: {missing}"
        assert served[f"{prefix}_build_info"] == "gauge"
        undocumented = set(served) - set(documented) - {f"{prefix}_build_info"}
        assert not undocumented, f"{prefix}: families without documentation: {undocumented}"
        assert all(family.documentation for family in families.values()), prefix
        # Counters end in _total; no untyped family anywhere.
        for family in families.values():
            assert family.type != "unknown", family.name
            if family.type == "counter":
                assert all(s.name.endswith(("_total", "_created")) for s in family.samples), (
                    family.name
                )
    assert _total(scraped["mdp_processor"], "mdp_processor_workers") == 2
