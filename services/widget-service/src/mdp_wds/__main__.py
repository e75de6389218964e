"""``mdp-wds``: run the widget data service until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import signal
import sys

from mdp_core.logging import configure_logging, get_logger
from mdp_core.settings import SettingsError, load
from mdp_wds.server import WidgetServer
from mdp_wds.settings import WdsSettings

__all__ = ["main"]

EXIT_CONFIG = 2


async def serve(settings: WdsSettings) -> None:
    """Run the server; a signal triggers the graceful stop (clients get 1001)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with WidgetServer(settings):
        await stop.wait()


def main() -> None:
    """Console entry point."""
    try:
        settings = load(WdsSettings, service_name="mdp-wds")
    except SettingsError as exc:
        print(f"mdp-wds: {exc}", file=sys.stderr)
        sys.exit(EXIT_CONFIG)
    configure_logging("mdp-wds", settings.log_level, settings.log_format)
    if settings.token_secret is None and settings.dev_key is None:
        get_logger("mdp_wds").error(
            "refusing to start without authentication: set MDP_WDS_TOKEN_SECRET "
            "(or MDP_WDS_DEV_KEY for development)"
        )
        sys.exit(EXIT_CONFIG)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
