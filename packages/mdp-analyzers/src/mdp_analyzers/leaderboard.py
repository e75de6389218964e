"""The leaderboard analyzer: top volume, top gappers and top gainers, safe across replicas.

Working state is the latest aggregate of each symbol in the current trading day (plus halts and
reference data), held in memory. On each flush the analyzer emits, for every symbol that
changed, one row (:mod:`mdp_analyzers.board`) as a "newer wins" state write keyed by trading
day and symbol, and the same bytes as the symbol's quote record. The boards themselves are
composed from the merged state (every replica's rows) by :meth:`LeaderboardAnalyzer.compose`,
which the service calls about once a second on one replica.

Why this is correct with several replicas and redeliveries:

* A row is a pure function of the symbol's *latest* aggregate (the day's accumulated volume and
  the last price travel in every bar), its halt state and its reference data, so keeping the
  row with the highest version (event time, then halt news, then reference completeness) gives
  the same result whatever the order or duplication of messages, and whichever replica saw
  which message.
* The quote record carries the row's version, and WDC keeps the newest (see
  :mod:`mdp_cache.widgets`), so it agrees with the merged row whichever replica wrote last.
* A LULD halt reaches one replica; it is recorded in MDC and every replica reads the merged
  halts back about once a second (:mod:`mdp_analyzers.halts`) and rewrites the rows whose
  flag changed; at equal bar ends the row carrying the newer halt news wins.
* Keys carry the trading day (04:00 ET boundary from the calendar, holidays included): a new
  day writes new keys; nothing is reset, so there is no reset race.
* Gainers are measured against the regular-session open and only for bars that end at or after
  09:30 ET; before the open the board is published empty with status ``pre_open``, decided by
  the clock at composition time, so the 09:30 switch happens with or without an event.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from typing import ClassVar, Final, cast

from mdp_analyzers.board import (
    BOARD_FEEDS,
    Board,
    BoardStatus,
    Row,
    build_row,
    compose_board,
    encode_row,
    row_scores,
)
from mdp_analyzers.halts import HALT_RECENCY_BITS, HaltBook, halts_read
from mdp_analyzers.state import PutNewer, RankedMember, Read, StateOp, TopRead
from mdp_analyzers.typing import Output, WidgetWrite
from mdp_cache.keys import FEED_QUOTE, KEY_LB_BOARD, KEY_LB_ROWS, KEY_LB_VERSIONS
from mdp_cache.records import ReferenceData
from mdp_core.calendar import MarketCalendar
from mdp_core.clock import ET, NS_PER_SECOND, to_ns
from mdp_core.events import LimitUpLimitDown, MarketEvent, MinuteAggregate, SecondAggregate

__all__ = ["DEFAULT_BOARD_SIZE", "LeaderboardAnalyzer"]

DEFAULT_BOARD_SIZE: Final = 100

_NS_PER_MS: Final = 1_000_000
_DAY_START: Final = time(4, 0)

Aggregate = SecondAggregate | MinuteAggregate


class _Symbol:
    """What the analyzer knows about one symbol today."""

    __slots__ = ("event", "first_regular", "reference")

    def __init__(self) -> None:
        self.event: Aggregate | None = None
        #: (start_ms, open) of the earliest regular-session bar seen (fallback session open).
        self.first_regular: tuple[int, float] | None = None
        self.reference: ReferenceData | None = None


class LeaderboardAnalyzer:
    """Top volume / gappers / gainers with quote records; state merged newer-wins.

    Args:
        calendar: The market calendar (trading days, 09:30 open, holidays, half days).
        board_size: Rows per board.
        compose_interval_s: Seconds between two board compositions.
    """

    name: ClassVar[str] = "leaderboard"
    consumes: ClassVar[frozenset[str]] = frozenset({"A", "AM", "LULD"})

    def __init__(
        self,
        calendar: MarketCalendar | None = None,
        *,
        board_size: int = DEFAULT_BOARD_SIZE,
        compose_interval_s: float = 1.0,
    ) -> None:
        self.calendar = calendar if calendar is not None else MarketCalendar()
        self.board_size = board_size
        self.compose_interval_ns = int(compose_interval_s * NS_PER_SECOND)
        self.sync_interval_ns = self.compose_interval_ns
        self._halts = HaltBook()
        self._day: date | None = None
        self._day_range = (0, 0)
        self._open_ns = 0
        self._symbols: dict[str, _Symbol] = {}
        self._changed: set[str] = set()
        self._wanted: list[tuple[str, date]] = []
        self._quote_names: dict[str, str] = {}
        #: Events skipped because they belong to a trading day already over.
        self.stale_events = 0
        #: Events of types this analyzer does not use.
        self.ignored_events = 0
        self.events = 0

    # --- input --------------------------------------------------------------------------

    def apply(self, inputs: Sequence[MarketEvent], now_ns: int) -> None:
        """Fold aggregates (and LULD halts) into the per-symbol state."""
        del now_ns
        symbols = self._symbols
        changed = self._changed
        for event in inputs:
            kind = type(event)
            if kind is SecondAggregate or kind is MinuteAggregate:
                event = cast(Aggregate, event)
                self.events += 1
                end_ns = event.end_ms * _NS_PER_MS
                lo, hi = self._day_range
                if not lo <= end_ns < hi:
                    day = self.calendar.trading_day(end_ns)
                    if self._day is None or day > self._day:
                        self._roll(day)
                        symbols = self._symbols
                        changed = self._changed
                    elif day < self._day:
                        self.stale_events += 1
                        continue
                state = symbols.get(event.symbol)
                if state is None:
                    state = symbols[event.symbol] = _Symbol()
                    self._wanted.append((event.symbol, self._day_or_raise()))
                if event.start_ms * _NS_PER_MS >= self._open_ns and (
                    state.first_regular is None or event.start_ms < state.first_regular[0]
                ):
                    state.first_regular = (event.start_ms, event.open)
                old = state.event
                if (
                    old is None
                    or event.end_ms > old.end_ms
                    or (event.end_ms == old.end_ms and _order(event) > _order(old))
                ):
                    state.event = event
                    changed.add(event.symbol)
            elif kind is LimitUpLimitDown:
                self._apply_luld(cast(LimitUpLimitDown, event))
            else:
                self.ignored_events += 1

    def _apply_luld(self, event: LimitUpLimitDown) -> None:
        if self._halts.note(event):
            self._halt_changed(event.symbol)

    def _halt_changed(self, symbol: str) -> None:
        state = self._symbols.get(symbol)
        if state is not None and state.event is not None:
            self._changed.add(symbol)

    # --- Synchronized: halts other replicas received -------------------------------------

    def sync_reads(self, now_ns: int) -> Sequence[Read]:
        """The merged halt records."""
        del now_ns
        return [halts_read()]

    def sync(self, now_ns: int, answers: Sequence[Sequence[RankedMember]]) -> None:
        """Learn the halts other replicas recorded; the rows they flag are written again."""
        del now_ns
        for symbol in self._halts.merge(answers[0]):
            self._halt_changed(symbol)

    def _roll(self, day: date) -> None:
        """Start trading day ``day``: yesterday's symbols and reference are forgotten.

        Halts are kept: a symbol halted at the close stays halted until its resume.
        """
        self._day = day
        self._symbols = {}
        self._changed = set()
        self._wanted = []
        schedule = self.calendar.schedule(day)
        self._open_ns = schedule.regular_open_ns if schedule is not None else 0
        # Every instant in [04:00 of the day, 04:00 of the next calendar day) belongs to it.
        self._day_range = (
            to_ns(datetime.combine(day, _DAY_START, tzinfo=ET)),
            to_ns(datetime.combine(day + timedelta(days=1), _DAY_START, tzinfo=ET)),
        )

    def _day_or_raise(self) -> date:
        if self._day is None:
            raise RuntimeError("no trading day yet")
        return self._day

    # --- reference data -----------------------------------------------------------------

    def wanted_reference(self) -> Sequence[tuple[str, date]]:
        """Symbols first seen since the last call (with their trading day)."""
        wanted, self._wanted = self._wanted, []
        return wanted

    def provide_reference(self, data: ReferenceData) -> None:
        """Attach reference data; the symbol's row is re-emitted on the next flush."""
        if data.trading_day != self._day:
            return
        state = self._symbols.get(data.symbol)
        if state is None:
            return
        state.reference = data
        if state.event is not None:
            self._changed.add(data.symbol)

    # --- output -------------------------------------------------------------------------

    def collect(self, now_ns: int) -> Output:
        """Rows of the symbols that changed: newer-wins state writes plus quote records."""
        ops: list[StateOp] = list(self._halts.take_ops())
        widgets: list[WidgetWrite] = []
        if self._changed and self._day is not None:
            rows, widgets = self.rows_output(self._changed)
            ops.extend(rows)
            self._changed = set()
        if self._day is not None:
            today = self.calendar.trading_day(now_ns)
            if today > self._day:
                self._roll(today)  # after the last rows of the old day were emitted
        return Output(widgets=widgets, state=ops)

    def rows_output(self, symbols: set[str]) -> tuple[list[PutNewer], list[WidgetWrite]]:
        """Encode the rows of ``symbols``: state writes and quote records."""
        assert self._day is not None
        day = self._day
        day_text = day.isoformat()
        rows_key = KEY_LB_ROWS.name(day=day_text)
        versions_key = KEY_LB_VERSIONS.name(day=day_text)
        board_keys = tuple(KEY_LB_BOARD.name(day=day_text, board=board.value) for board in Board)
        quote_names = self._quote_names
        ttl = KEY_LB_ROWS.ttl or 0
        ops: list[PutNewer] = []
        widgets: list[WidgetWrite] = []
        for symbol in symbols:
            state = self._symbols[symbol]
            event = state.event
            if event is None:
                continue
            row = self._row(event, state, day)
            payload = encode_row(row)
            completeness = state.reference.completeness if state.reference is not None else 0
            version = self._version(symbol, event, completeness)
            ops.append(
                PutNewer(
                    rows_key=rows_key,
                    versions_key=versions_key,
                    member=symbol,
                    version=version,
                    payload=payload,
                    score_keys=board_keys,
                    scores=row_scores(row),
                    ttl=ttl,
                )
            )
            name = quote_names.get(symbol)
            if name is None:
                name = quote_names[symbol] = FEED_QUOTE.name(symbol=symbol)
            # The row's version orders the quote record too: whichever replica writes last,
            # the record never goes back in time.
            widgets.append(WidgetWrite(FEED_QUOTE, name, payload, version=version))
        return ops, widgets

    def _version(self, symbol: str, event: Aggregate, completeness: int) -> int:
        """The row's version: bar end, then how recent its halt news is, then completeness.

        A halted symbol makes no new bars, so a replica that learns of a halt (or of the
        resume) rewrites the row of the very bar other replicas wrote without the news; at
        equal bar ends the row carrying the newer halt record wins
        (:meth:`~mdp_analyzers.halts.HaltBook.recency`). Below 2**53 until the year 2109.
        """
        recency = self._halts.recency(symbol, event.end_ms)
        return (((event.end_ms << HALT_RECENCY_BITS) + recency) << 3) + completeness

    def _row(self, event: Aggregate, state: _Symbol, day: date) -> Row:
        session_open: float | None = None
        if event.end_ms * _NS_PER_MS >= self._open_ns > 0:
            if event.official_open is not None and event.official_open > 0:
                session_open = event.official_open
            elif state.first_regular is not None:
                session_open = state.first_regular[1]
        return build_row(
            event,
            day,
            reference=state.reference,
            session_open=session_open,
            halted=self._halts.halted(event.symbol),
        )

    # --- composition (Composer protocol) ------------------------------------------------

    def reads(self, now_ns: int) -> Sequence[TopRead]:
        """Top-N reads of the three boards of the trading day at ``now_ns``."""
        day_text = self.calendar.trading_day(now_ns).isoformat()
        rows_key = KEY_LB_ROWS.name(day=day_text)
        return [
            TopRead(KEY_LB_BOARD.name(day=day_text, board=board.value), rows_key, self.board_size)
            for board in Board
        ]

    def compose(
        self, now_ns: int, answers: Sequence[Sequence[RankedMember]]
    ) -> Sequence[WidgetWrite]:
        """Board documents of the three boards, from the answers to :meth:`reads`."""
        day = self.calendar.trading_day(now_ns)
        session = self.calendar.session_at(now_ns)
        schedule = self.calendar.schedule(day)
        before_open = schedule is None or now_ns < schedule.regular_open_ns
        writes: list[WidgetWrite] = []
        for board, ranked in zip(Board, answers, strict=True):
            status = (
                BoardStatus.PRE_OPEN
                if board is Board.TOP_GAINERS and before_open
                else BoardStatus.LIVE
            )
            payload = compose_board(
                board,
                ranked,
                trading_day=day,
                session=session,
                as_of_ms=now_ns // _NS_PER_MS,
                status=status,
            )
            feed = BOARD_FEEDS[board]
            # Versioned by composition time: during a lease handover the later composition
            # wins whichever write lands last.
            writes.append(WidgetWrite(feed, feed.name(), payload, version=now_ns // _NS_PER_MS))
        return writes


def _order(event: Aggregate) -> tuple[int, int, int, float]:
    """Which of two aggregates of one symbol is the later (end time, then running totals)."""
    return (event.end_ms, event.accumulated_volume, event.volume, event.close)
