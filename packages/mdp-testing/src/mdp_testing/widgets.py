"""A widget sink that keeps the documents in memory, for tests of the services that write WDC.

It fits ``mdp_processor.processor.WidgetSink`` and stores what it is handed the way WDC would
(versioned writes newer-wins, lists capped), through the offline run's
:class:`~mdp_analyzers.replay.OfflineResult`. Tests that exercise Redis itself use the real
``WidgetWriter`` against a real server instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from mdp_analyzers.replay import OfflineResult
from mdp_analyzers.typing import WidgetWrite
from mdp_cache.widgets import WidgetItem

__all__ = ["MemoryWidgets"]


class MemoryWidgets:
    """A widget sink holding the documents in memory (read them in :attr:`store`)."""

    def __init__(self) -> None:
        self.store = OfflineResult()

    async def write(self, writes: Sequence[WidgetItem]) -> int:
        """Record the writes as WDC would hold them."""
        self.store.record(
            WidgetWrite(item.feed, item.name, item.payload, item.publish, item.version)
            for item in writes
        )
        return len(writes)
