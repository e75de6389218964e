"""Finding analyzers by name: the ``mdp.analyzers`` entry point group.

Services are configured with analyzer *names* (``MDP_ANALYZERS=leaderboard,router``); this
module turns a name into the class registered under it by any installed distribution, so a
third-party analyzer is one ``[project.entry-points."mdp.analyzers"]`` line away.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Final, cast

from mdp_analyzers.typing import Analyzer, AnyAnalyzer, FeedMessage
from mdp_core.errors import MdpError
from mdp_core.events import MarketEvent

__all__ = [
    "ENTRY_POINT_GROUP",
    "UnknownAnalyzer",
    "available",
    "create_analyzer",
    "create_feed_analyzer",
    "create_market_analyzer",
    "load_analyzer",
]

ENTRY_POINT_GROUP: Final = "mdp.analyzers"


class UnknownAnalyzer(MdpError):
    """No analyzer is registered under a name (or its entry point cannot be loaded).

    Attributes:
        name: The name asked for.
        known: The names that are registered.
    """

    def __init__(self, name: str, known: list[str], reason: str = "") -> None:
        self.name = name
        self.known = known
        listing = ", ".join(known) if known else "none"
        detail = f": {reason}" if reason else ""
        super().__init__(f"no analyzer named {name!r}{detail} (registered: {listing})")


def available() -> dict[str, EntryPoint]:
    """Every registered analyzer entry point, by name."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_analyzer(name: str) -> type:
    """The analyzer class registered under ``name``.

    Raises:
        UnknownAnalyzer: nothing is registered under ``name``, or it fails to import.
    """
    registered = available()
    entry = registered.get(name)
    if entry is None:
        raise UnknownAnalyzer(name, sorted(registered))
    try:
        loaded = entry.load()
    except (ImportError, AttributeError) as exc:
        raise UnknownAnalyzer(
            name, sorted(registered), f"cannot load {entry.value}: {exc}"
        ) from exc
    if not isinstance(loaded, type):
        raise UnknownAnalyzer(name, sorted(registered), f"{entry.value} is not a class")
    return loaded


def create_analyzer(name: str, **options: object) -> AnyAnalyzer:
    """Instantiate the analyzer ``name``, passing only the ``options`` its constructor accepts.

    Services pass the same options (``calendar=...``) to every analyzer; each takes what it
    understands.

    Raises:
        UnknownAnalyzer: also when the instance lacks a member of the :class:`Analyzer`
            protocol (a plugin is checked here, at start, not on its first batch).
    """
    cls = load_analyzer(name)
    parameters = inspect.signature(cls).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    chosen = {k: v for k, v in options.items() if accepts_any or k in parameters}
    analyzer = cls(**chosen)
    if not isinstance(analyzer, Analyzer):
        reason = f"{cls.__qualname__} lacks a member of the Analyzer protocol"
        raise UnknownAnalyzer(name, sorted(available()), reason)
    return analyzer


def create_market_analyzer(name: str, **options: object) -> Analyzer[MarketEvent]:
    """:func:`create_analyzer` for a processor: one that consumes market event kinds.

    Raises:
        UnknownAnalyzer: also when it consumes feed patterns (``quote:*``) or ``news``.
    """
    analyzer = create_analyzer(name, **options)
    _require(name, analyzer, "market events", lambda kind: ":" not in kind and kind != "news")
    # Routed by ``consumes``, which was just checked: the input type follows from it.
    return cast("Analyzer[MarketEvent]", analyzer)


def create_feed_analyzer(name: str, **options: object) -> Analyzer[FeedMessage]:
    """:func:`create_analyzer` for the scanner: one that consumes WDC feeds (``quote:*``).

    Raises:
        UnknownAnalyzer: also when it consumes anything but feed names or patterns.
    """
    analyzer = create_analyzer(name, **options)
    _require(name, analyzer, "feed messages", lambda kind: ":" in kind)
    return cast("Analyzer[FeedMessage]", analyzer)


def _require(name: str, analyzer: AnyAnalyzer, inputs: str, fits: Callable[[str], bool]) -> None:
    odd = sorted(kind for kind in analyzer.consumes if not fits(kind))
    if odd:
        raise UnknownAnalyzer(name, sorted(available()), f"consumes {odd}, not {inputs}")
