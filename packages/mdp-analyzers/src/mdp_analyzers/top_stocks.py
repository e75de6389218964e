"""The in-memory, single-instance leaderboard for the embedded default (no Redis configured).

It is the :class:`~mdp_analyzers.leaderboard.LeaderboardAnalyzer` with its state applied to a
process-local :class:`~mdp_analyzers.state.MemoryState` and its boards composed on its own
cadence inside :meth:`TopStocksAnalyzer.collect`, so it emits exactly the rows, quote records and
board documents the Redis-backed path does, and nothing for the service to merge.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import ClassVar

from mdp_analyzers.leaderboard import DEFAULT_BOARD_SIZE, LeaderboardAnalyzer
from mdp_analyzers.state import MemoryState
from mdp_analyzers.typing import Output, WidgetWrite, published
from mdp_cache.keys import KEY_LB_ROWS
from mdp_cache.records import ReferenceData
from mdp_core.calendar import MarketCalendar
from mdp_core.events import MarketEvent

__all__ = ["TopStocksAnalyzer"]


class TopStocksAnalyzer:
    """Leaderboards and quote records computed and composed in one process.

    Args:
        calendar: The market calendar.
        board_size: Rows per board.
        compose_interval_seconds: Seconds between two board publications.
    """

    name: ClassVar[str] = "top_stocks"
    consumes: ClassVar[frozenset[str]] = LeaderboardAnalyzer.consumes

    def __init__(
        self,
        calendar: MarketCalendar | None = None,
        *,
        board_size: int = DEFAULT_BOARD_SIZE,
        compose_interval_seconds: float = 1.0,
    ) -> None:
        self._board = LeaderboardAnalyzer(
            calendar, board_size=board_size, compose_interval_seconds=compose_interval_seconds
        )
        self.state = MemoryState()
        self._next_compose_ns: int | None = None
        self._current_day: date | None = None

    @property
    def leaderboard(self) -> LeaderboardAnalyzer:
        """The wrapped analyzer (its counters and calendar)."""
        return self._board

    def apply(self, inputs: Sequence[MarketEvent], now_ns: int) -> None:
        """Fold a batch of events into the state."""
        self._board.apply(inputs, now_ns)

    def wanted_reference(self) -> Sequence[tuple[str, date]]:
        """Symbols lacking reference data (see :class:`~mdp_analyzers.typing.NeedsReference`)."""
        return self._board.wanted_reference()

    def provide_reference(self, data: ReferenceData) -> None:
        """Attach reference data to a symbol."""
        self._board.provide_reference(data)

    def collect(self, now_ns: int) -> Output:
        """Quote records of changed symbols, plus the boards when their time has come."""
        produced = self._board.collect(now_ns)
        self.state.apply_now(produced.state)
        widgets: list[WidgetWrite] = [*produced.widgets, *published(self.state.applied.accepted)]
        if self._next_compose_ns is None or now_ns >= self._next_compose_ns:
            self._next_compose_ns = now_ns + self._board.compose_interval_ns
            reads = self._board.reads(now_ns)
            answers = [self.state.top_now(read) for read in reads]
            widgets.extend(self._board.compose(now_ns, answers))
            self._forget_old_days(now_ns)
        return Output(widgets=widgets)

    def _forget_old_days(self, now_ns: int) -> None:
        day = self._board.calendar.trading_day(now_ns)
        if day != self._current_day:
            self._current_day = day
            keep = KEY_LB_ROWS.name(day=day.isoformat()).rsplit(":", 1)[0] + ":"
            prefix = KEY_LB_ROWS.template.split("{", 1)[0]
            state = self.state
            for table in (state.rows, state.versions, state.boards, state.figures):
                for key in [k for k in table if not k.startswith(keep) and k.startswith(prefix)]:
                    del table[key]
