"""A processor worker on the real RabbitMQ and Redis: its composer thread's death ends it.

A worker whose compositions stopped would keep applying events while every board froze, and
report itself healthy. It ends instead, naming the cause, so its parent restarts it
(``MdpProcessorWorkersDown`` then shows a worker that keeps dying).
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from tests.integration.test_composer_thread import Unopenable

from mdp_processor import worker as worker_module
from mdp_processor.composition import ComposerThread
from mdp_runtime.process import WorkerContext


class Supervisor:
    """What a worker sees of its parent: the stop order and the reports."""

    def __init__(self) -> None:
        self.stopping = asyncio.Event()
        self.reported = asyncio.Event()
        self.reports: list[dict[str, Any]] = []

    def report(self, **counters: Any) -> None:
        self.reports.append(counters)
        self.reported.set()


@pytest.fixture
def environment(
    monkeypatch: pytest.MonkeyPatch, amqp_url: str, redis_db_url: str, mdq_prefix: str
) -> None:
    monkeypatch.setenv("MDP_AMQP_URL", amqp_url)
    monkeypatch.setenv("MDP_MDC_REDIS_URL", redis_db_url)
    monkeypatch.setenv("MDP_WDC_REDIS_URL", redis_db_url)
    monkeypatch.setenv("MDP_MDQ_PREFIX", mdq_prefix)
    for name in ("MASSIVE_API_KEY", "POLYGON_API_KEY", "MDP_MASSIVE_API_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("environment")
async def test_a_worker_whose_composer_thread_dies_ends_naming_the_cause(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started: list[ComposerThread] = []

    def dying(*args: object, **kwargs: object) -> ComposerThread:
        thread = ComposerThread(Unopenable, name="composer-test")
        started.append(thread)
        return thread

    monkeypatch.setattr(worker_module, "composer_thread", dying)
    supervisor = Supervisor()
    with pytest.raises(RuntimeError, match="composer thread ended: ValueError"):
        async with asyncio.timeout(30):
            await worker_module.worker(0, cast(WorkerContext, supervisor))
    (thread,) = started
    assert not thread.is_alive()
    assert isinstance(thread.failure, ValueError)
    assert not supervisor.stopping.is_set()  # it ended on its own, not on an order


@pytest.mark.usefixtures("environment")
async def test_a_worker_told_to_stop_stops_its_composer_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started: list[ComposerThread] = []
    real = worker_module.composer_thread

    def recorded(*args: Any, **kwargs: Any) -> ComposerThread:
        thread = real(*args, **kwargs)
        started.append(thread)
        return thread

    monkeypatch.setattr(worker_module, "composer_thread", recorded)
    supervisor = Supervisor()
    running = asyncio.create_task(worker_module.worker(0, cast(WorkerContext, supervisor)))
    async with asyncio.timeout(30):
        await supervisor.reported.wait()
    # The composer thread's counts are reported with the processor's.
    assert {"compositions", "write_failures", "bad_writes"} <= set(supervisor.reports[-1])
    (thread,) = started
    assert thread.is_alive()
    supervisor.stopping.set()
    async with asyncio.timeout(30):
        await running  # no exception: an ordered stop
    assert not thread.is_alive()
    assert thread.failure is None
