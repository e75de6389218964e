"""A template for a new analyzer: copy it, rename it, register it.

Required: the class attributes ``name`` and ``consumes``, and the methods ``apply`` and
``collect`` (:class:`mdp_analyzers.typing.Analyzer`). Optional hooks the services detect:

* ``wanted_reference`` / ``provide_reference`` (:class:`~mdp_analyzers.typing.NeedsReference`):
  get previous-day bars, average volume and free float without waiting for them;
* ``reads`` / ``compose`` / ``compose_interval_ns`` (:class:`~mdp_analyzers.typing.Composer`):
  publish documents composed from the state every replica merged;
* ``snapshot_patterns`` / ``restore`` (:class:`~mdp_analyzers.typing.Rehydratable`): rebuild
  in-memory state from widget snapshots after a restart.

Rules: no I/O, no wall clock (time is ``now_ns``), and ``collect`` returns each changed item
once, however many events touched it. Register the class in your distribution's
``pyproject.toml``::

    [project.entry-points."mdp.analyzers"]
    my_analyzer = "my_package.my_module:MyAnalyzer"

then run the conformance suite on it (``mdp_testing.conformance.AnalyzerSuite``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import msgspec

from mdp_analyzers.typing import Output, WidgetWrite
from mdp_cache.keys import FEED_LATEST_TRADE
from mdp_core.events import MarketEvent, Trade

__all__ = ["TemplateAnalyzer"]


class TemplateAnalyzer:
    """Example: the last trade price per symbol, written once per flush."""

    name: ClassVar[str] = "template"
    consumes: ClassVar[frozenset[str]] = frozenset({"T"})

    def __init__(self) -> None:
        self._last: dict[str, Trade] = {}

    def apply(self, inputs: Sequence[MarketEvent], now_ns: int) -> None:
        """Fold a batch: remember, do not write."""
        del now_ns
        for event in inputs:
            if isinstance(event, Trade):
                self._last[event.symbol] = event

    def collect(self, now_ns: int) -> Output:
        """Emit what changed since the previous call, once per item."""
        del now_ns
        changed, self._last = self._last, {}
        return Output(
            widgets=[
                WidgetWrite(
                    FEED_LATEST_TRADE,
                    FEED_LATEST_TRADE.name(symbol=symbol),
                    msgspec.json.encode(trade),
                )
                for symbol, trade in changed.items()
            ]
        )
