"""Studying a session in a notebook: replay events through analyzers, read back the widgets.

Example::

    from mdp_analyzers.notebook import replay_leaderboards, replay_session, alerts_of
    boards = replay_leaderboards("session.jsonl")
    boards["scanner:top_gappers"]["rows"][:5]
    alerts_of(replay_session("session.jsonl"))["alerts:hod"][:5]

``replay_session`` runs every analyzer of the platform that needs no server: the in-memory
leaderboard, top trades, the news analyzer (with ``news=``) and, on the quote records the
leaderboard publishes, the scanner's daily range analyzer. ``docs/analyzers-in-a-notebook.md``
walks through a run.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mdp_analyzers.board import BOARD_FEEDS
from mdp_analyzers.daily_range import DailyRangeAnalyzer
from mdp_analyzers.news import FinlightDataAnalyzer
from mdp_analyzers.replay import OfflineResult, ReferenceLookup, read_replay, run_offline
from mdp_analyzers.top_stocks import TopStocksAnalyzer
from mdp_analyzers.top_trades import TopTradesAnalyzer
from mdp_analyzers.typing import AnyAnalyzer
from mdp_cache.keys import (
    FEED_ALERTS_HOD,
    FEED_ALERTS_LOD,
    FEED_DAILY_RANGE,
    FEED_QUOTE,
    FEED_TOP_TRADES,
    FEED_TRADE_STATS,
)
from mdp_core.calendar import MarketCalendar
from mdp_core.events import MarketEvent
from mdp_core.news import Article

__all__ = [
    "OfflineResult",
    "alerts_of",
    "boards_of",
    "quotes_of",
    "ranges_of",
    "read_replay",
    "replay_leaderboards",
    "replay_session",
    "run_offline",
]

# The ``Any`` below is decoded JSON (OfflineResult.document), for a notebook to index into.


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


def ranges_of(result: OfflineResult) -> dict[str, Any]:
    """The decoded daily range documents of a run, by symbol."""
    prefix = FEED_DAILY_RANGE.template.split("{", 1)[0]
    return {
        name[len(prefix) :]: result.document(name)
        for name in result.values
        if FEED_DAILY_RANGE.matches(name)
    }


def alerts_of(result: OfflineResult) -> dict[str, list[Any]]:
    """The HOD and LOD alert lists of a run, newest first (empty lists when none fired)."""
    return {
        feed.name(): result.document(feed.name()) if feed.name() in result.lists else []
        for feed in (FEED_ALERTS_HOD, FEED_ALERTS_LOD)
    }


def replay_session(
    source: Iterable[MarketEvent] | str | Path,
    *,
    news: Iterable[Article] = (),
    reference: ReferenceLookup | None = None,
    calendar: MarketCalendar | None = None,
) -> OfflineResult:
    """Run every in-process analyzer over a session, the scanner's daily range included.

    Args:
        source: Market events in arrival order, or the path of a JSONL recording.
        news: Finlight articles, handed to the news analyzer at their publication time.
        reference: Reference data (previous close, average volume, float) by symbol.
        calendar: The market calendar (default: the exchanges' rules).

    Returns:
        Everything written: read it with :func:`boards_of`, :func:`quotes_of`,
        :func:`ranges_of`, :func:`alerts_of` or ``result.document(feed_name)``.
    """
    calendar = calendar if calendar is not None else MarketCalendar()
    analyzers: list[AnyAnalyzer] = [
        TopStocksAnalyzer(calendar),
        TopTradesAnalyzer(),
        FinlightDataAnalyzer(),
        DailyRangeAnalyzer(calendar),
    ]
    return run_offline(source, analyzers, reference=reference, news=news)


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
    analyzers: list[AnyAnalyzer] = [TopStocksAnalyzer(calendar)]
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
