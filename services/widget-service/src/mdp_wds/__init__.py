"""Widget data service (WDS): authenticated websocket fan-out of widget feeds to browsers.

One websocket per browser tab carries many feeds; see ``docs/reference/wds-protocol.md``.
"""

from mdp_wds.access import FeedRef, FeedRefused, Grant, resolve_feed
from mdp_wds.hub import Hub
from mdp_wds.protocol import PROTOCOL_VERSION, CloseCode, ErrorCode
from mdp_wds.server import WS_PATH, WidgetServer
from mdp_wds.settings import WdsSettings
from mdp_wds.stats import WdsStats

__all__ = [
    "PROTOCOL_VERSION",
    "WS_PATH",
    "CloseCode",
    "ErrorCode",
    "FeedRef",
    "FeedRefused",
    "Grant",
    "Hub",
    "WdsSettings",
    "WdsStats",
    "WidgetServer",
    "resolve_feed",
]
