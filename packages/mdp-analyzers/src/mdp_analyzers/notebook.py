"""Studying a session in a notebook: replay events through analyzers, read back the widgets.

Example::

    from mdp_analyzers.notebook import replay_leaderboards
    boards = replay_leaderboards("session.jsonl")
    boards["scanner:top_gappers"]["rows"][:5]
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mdp_analyzers.board import BOARD_FEEDS
from mdp_analyzers.replay import OfflineResult, ReferenceLookup, read_replay, run_offline
from mdp_analyzers.top_stocks import TopStocksAnalyzer
from mdp_analyzers.top_trades import TopTradesAnalyzer
from mdp_cache.keys import FEED_QUOTE, FEED_TOP_TRADES, FEED_TRADE_STATS
from mdp_core.calendar import MarketCalendar
from mdp_core.events import MarketEvent

__all__ = [
    "OfflineResult",
    "boards_of",
    "quotes_of",
    "read_replay",
    "replay_leaderboards",
    "run_offline",
]


def boards_of(result: OfflineResult) -> dict[str, Any]:
    """The decoded board documents of a run, by feed name."""
    return {
        feed.name(): result.document(feed.name())
        for feed in BOARD_FEEDS.values()
        if feed.name() in result.values
    }


def quotes_of(result: OfflineResult) -> dict[str, Any]:
    """The decoded quote records of a run, by symbol."""
    prefix = FEED_QUOTE.template.split("{", 1)[0]
    return {
        name[len(prefix) :]: result.document(name)
        for name in result.values
        if FEED_QUOTE.matches(name)
    }


def replay_leaderboards(
    source: Iterable[MarketEvent] | str | Path,
    *,
    reference: ReferenceLookup | None = None,
    calendar: MarketCalendar | None = None,
    with_trades: bool = False,
) -> dict[str, Any]:
    """Run the in-memory leaderboard (and optionally top trades) over a session.

    Returns:
        The final board documents by feed name (and the top trades document when asked).
    """
    analyzers: list[Any] = [TopStocksAnalyzer(calendar)]
    if with_trades:
        analyzers.append(TopTradesAnalyzer())
    result = run_offline(source, analyzers, reference=reference)
    documents = boards_of(result)
    if with_trades:
        documents.update(
            {
                name: result.document(name)
                for name in result.values
                if FEED_TOP_TRADES.matches(name) or FEED_TRADE_STATS.matches(name)
            }
        )
    return documents
