"""Starts the demo's Finlight listener (against the news simulator or the real service)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from mdp_core.clock import Clock
from mdp_core.settings import load
from mdp_core.telemetry import Metrics
from mdp_news_listener.listener import FinlightListener
from mdp_news_listener.settings import NewsListenerSettings
from mdp_queues import Publisher

__all__ = ["start_news_listener"]

_NO_ENV: Mapping[str, str] = {}


def start_news_listener(
    overrides: Mapping[str, Any], publisher: Publisher, clock: Clock, stop: asyncio.Event
) -> tuple[FinlightListener, asyncio.Task[None]]:
    """Run the news listener in a task with these settings (URLs, key) over the defaults."""
    settings = load(
        NewsListenerSettings,
        _NO_ENV,
        **overrides,
        heartbeat_enabled=False,
        backoff_initial_seconds=0.2,
    )
    listener = FinlightListener(settings, publisher, clock, Metrics("news-listener"))
    return listener, asyncio.create_task(listener.run(stop), name="news listener")
