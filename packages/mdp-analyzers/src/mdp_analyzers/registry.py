"""Finding analyzers by name: the ``mdp.analyzers`` entry point group.

Services are configured with analyzer *names* (``MDP_ANALYZERS=leaderboard,router``); this
module turns a name into the class registered under it by any installed distribution, so a
third-party analyzer is one ``[project.entry-points."mdp.analyzers"]`` line away.
"""

from __future__ import annotations

import inspect
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Final

from mdp_core.errors import MdpError

__all__ = ["ENTRY_POINT_GROUP", "UnknownAnalyzer", "available", "create_analyzer", "load_analyzer"]

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


def load_analyzer(name: str) -> type[Any]:
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


def create_analyzer(name: str, **options: Any) -> Any:
    """Instantiate the analyzer ``name``, passing only the ``options`` its constructor accepts.

    Services pass the same options (``calendar=...``) to every analyzer; each takes what it
    understands.
    """
    cls = load_analyzer(name)
    parameters = inspect.signature(cls).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    chosen = {k: v for k, v in options.items() if accepts_any or k in parameters}
    return cls(**chosen)
