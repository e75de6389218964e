"""The news listener's authenticated control routes: ``POST /control/start`` and ``/stop``."""

from __future__ import annotations

from collections.abc import Mapping

from mdp_news_listener.listener import FinlightListener
from mdp_runtime import ControlRequest, HealthServer

__all__ = ["mount_control"]


def mount_control(server: HealthServer, listener: FinlightListener) -> None:
    """Register the news listener's control routes on ``server`` (before it starts)."""

    async def start(_: ControlRequest) -> Mapping[str, object]:
        listener.start_streaming()
        return {"enabled": True}

    async def stop(_: ControlRequest) -> Mapping[str, object]:
        listener.stop_streaming()
        return {"enabled": False}

    async def status(_: ControlRequest) -> Mapping[str, object]:
        return listener.status()

    server.add_control("POST", "/start", start)
    server.add_control("POST", "/stop", stop)
    server.add_control("GET", "/state", status)
