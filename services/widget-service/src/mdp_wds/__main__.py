"""``mdp-wds``: run the widget data service until SIGTERM/SIGINT (clients then get 1001).

Health, readiness and metrics are served on the websocket port itself (``/livez``,
``/readyz``, ``/metrics``, ``/status``), so ``MDP_HEALTH_PORT`` is not used by this service.
"""

from __future__ import annotations

import asyncio

from mdp_core.logging import configure_logging, get_logger
from mdp_core.settings import SettingsError, load
from mdp_runtime import ConfigError, ExitCode, run_service
from mdp_wds.server import WidgetServer
from mdp_wds.settings import WdsSettings

__all__ = ["main", "serve"]

_log = get_logger("mdp_wds.main")


async def serve(stop: asyncio.Event) -> int:
    """The service body: serve until ``stop`` is set, then stop gracefully."""
    try:
        settings = load(WdsSettings, service_name="wds")
    except SettingsError as exc:
        raise ConfigError(str(exc)) from None
    configure_logging("wds", settings.log_level, settings.log_format)
    if settings.token_secret is None and settings.dev_key is None:
        msg = (
            "refusing to start without authentication: set MDP_WDS_TOKEN_SECRET "
            "(or MDP_WDS_DEV_KEY for development)"
        )
        raise ConfigError(msg)
    server = WidgetServer(settings)
    async with server:
        _log.info("wds serving", url=server.url, origins=list(settings.allowed_origins))
        await stop.wait()
    return ExitCode.OK


def main() -> None:
    """Console entry point."""
    raise SystemExit(run_service(serve, name="mdp-wds"))


if __name__ == "__main__":
    main()
