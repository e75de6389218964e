"""Starts the Finlight listener of the demo against the news simulator."""

from __future__ import annotations

import asyncio

from mdp_core.clock import Clock
from mdp_queues import Publisher
from mdp_sim.server import SimServers

__all__ = ["start_news_listener"]


async def start_news_listener(
    sim: SimServers, publisher: Publisher, clock: Clock, stop: asyncio.Event
) -> asyncio.Task[None] | None:
    """Run the news listener in a task; None when the news listener is not installed."""
    del sim, publisher, clock, stop
    return None
