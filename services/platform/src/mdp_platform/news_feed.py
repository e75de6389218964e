"""Starts the demo's Finlight listener against the news simulator."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from mdp_core.clock import Clock
from mdp_core.settings import Secret, load
from mdp_core.telemetry import Metrics
from mdp_news_listener.listener import FinlightListener
from mdp_news_listener.settings import NewsListenerSettings
from mdp_queues import Publisher
from mdp_sim.server import SimServers

__all__ = ["start_news_listener"]

_NO_ENV: Mapping[str, str] = {}


def start_news_listener(
    sim: SimServers, publisher: Publisher, clock: Clock, stop: asyncio.Event
) -> tuple[FinlightListener, asyncio.Task[None]]:
    """Run the news listener in a task, connected to the simulator's Finlight server."""
    settings = load(
        NewsListenerSettings,
        _NO_ENV,
        wss_url=sim.finlight_wss_url,
        base_url=sim.finlight_base_url,
        api_key=Secret(sim.finlight_api_key),
        heartbeat_enabled=False,
        backoff_initial_seconds=0.2,
    )
    listener = FinlightListener(settings, publisher, clock, Metrics("news-listener"))
    return listener, asyncio.create_task(listener.run(stop), name="news listener")
