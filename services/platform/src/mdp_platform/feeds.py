"""Where the demo's data comes from: the simulators, or the real providers with the user's keys.

Either way the listeners, the processor and the news path are the same objects; only the
addresses, keys, the reference-data source and the market clock differ.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mdp_cache.reference import ReferenceSource
from mdp_core.clock import Clock, LiveClock
from mdp_core.settings import Secret
from mdp_platform.market_clock import MarketClock
from mdp_platform.reference_data import SimReferenceSource
from mdp_processor.massive_reference import MassiveReferenceSource
from mdp_sim.server import SimServers

__all__ = ["MASSIVE_REST_URL", "FeedPlan", "real_feeds", "simulated_feeds"]

#: The Massive REST API, for reference data on the real feed.
MASSIVE_REST_URL = "https://api.massive.com"


@dataclass(frozen=True, slots=True)
class FeedPlan:
    """How to reach the market data and news providers.

    Attributes:
        description: One line for the demo's progress output.
        market_clock: The clock analyzers follow (simulated time, or the wall clock).
        listener: Overrides of the Massive listener's settings (feed, key, TLS, ...).
        news: Overrides of the news listener's settings, or None when there is no news key.
        reference: Where reference data (previous day, average volume, float) comes from.
    """

    description: str
    market_clock: Clock
    listener: Mapping[str, Any]
    news: Mapping[str, Any] | None
    reference: ReferenceSource


def simulated_feeds(sim: SimServers) -> FeedPlan:
    """The simulators on loopback, always on, at the simulated market's time."""
    assert sim.clock is not None
    return FeedPlan(
        description=f"listeners connected to the simulators ({sim.massive_feed})",
        market_clock=MarketClock(sim.clock),
        listener={
            "feed": sim.massive_feed,
            "feed_allow": (sim.massive_feed,),  # the simulator's exact address, nothing else
            "secure": False,
            "always_on": True,
            "api_key": Secret(sim.api_key),
        },
        news={
            "wss_url": sim.finlight_wss_url,
            "base_url": sim.finlight_base_url,
            "api_key": Secret(sim.finlight_api_key),
        },
        reference=SimReferenceSource(sim.market),
    )


def real_feeds(massive_key: Secret, finlight_key: Secret | None) -> FeedPlan:
    """The real Massive (and, with a key, Finlight) feeds, market-aware, on the wall clock."""
    return FeedPlan(
        description="listeners connected to the real Massive"
        + (" and Finlight feeds" if finlight_key else " feed (no Finlight key: no news)"),
        market_clock=LiveClock(),
        listener={"api_key": massive_key},
        news=None if finlight_key is None else {"api_key": finlight_key},
        reference=MassiveReferenceSource(massive_key.reveal(), MASSIVE_REST_URL),
    )
