"""The leaderboard analyzer: top volume, top gappers and top gainers, safe across replicas.

Working state is the latest aggregate of each symbol in the current trading day (plus halts and
reference data), held in memory. On each flush the analyzer emits, for every symbol that
changed, one row (:mod:`mdp_analyzers.board`) as a "newer wins" state write keyed by trading
day and symbol, and the same bytes as the symbol's quote record. The boards themselves are
composed from the merged state (every replica's rows) by :meth:`LeaderboardAnalyzer.compose`,
which the service calls about once a second on one replica.

Why this is exact with several replicas, redeliveries and any order:

* **Session figures are folded from every bar**: the pre-market, regular and after-hours high
  and low (each with the earliest bar end that reached it: when it became known), each
  session's first bar end, and the regular-session open (the official open, else the open of
  the earliest regular bar). A bar belongs to the session in which it starts. These figures
  are a lattice (max, min, earliest), so folding is insensitive to order and duplication.
* **No replica needs to see every bar.** Rows go to MDC as :class:`~mdp_cache.ops.PutMerged`:
  MDC joins the figures of every offer and stores a row only when it holds all of them and is
  the newest. A refused writer is handed the stored row and the joined figures, folds them in
  (this is also how a restarted or new replica hydrates a symbol from MDC, with the stored
  row's reference data where its own lookup has not landed) and offers the row again on the
  next flush. So the stored row, its board scores and the published quote record
  always carry every extreme any replica saw.
* The latest bar (the day's accumulated volume and last price travel in every bar), halt state
  and reference completeness make the row's version, as before: the newest bar wins.
* The quote record is published only once MDC stored its row, versioned by MDC's per-symbol
  sequence, so it never goes back in time whichever replica wrote last.
* A LULD halt reaches one replica; it is recorded in MDC and every replica reads the merged
  halts back about once a second (:mod:`mdp_analyzers.halts`) and rewrites the rows whose
  flag changed; at equal bar ends the row carrying the newer halt news wins. A pause ends
  with its trading day.
* Keys carry the trading day (04:00 ET boundary from the calendar, holidays included): a new
  day writes new keys; nothing is reset, so there is no reset race.
* Gainers are measured against the regular-session open and only for bars that end at or after
  09:30 ET; before the open the board is published empty with status ``pre_open``, decided by
  the clock at composition time, so the 09:30 switch happens with or without an event.
* Bars that cannot be right (high below low, a non-positive price, open or close outside the
  bar's range) are dropped and counted by reason in :attr:`LeaderboardAnalyzer.rejected`, never
  folded into a figure.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from typing import ClassVar, Final, cast

import msgspec

from mdp_analyzers.board import (
    BOARD_FEEDS,
    Board,
    BoardStatus,
    Row,
    SessionFigures,
    bar_problem,
    build_row,
    compose_board,
    encode_row,
)
from mdp_analyzers.halts import HALT_RECENCY_BITS, HaltBook, halts_read
from mdp_analyzers.state import PutMerged, RankedMember, Read, Refused, StateOp, TopRead
from mdp_analyzers.typing import Output, WidgetWrite
from mdp_cache import lattice
from mdp_cache.keys import FEED_QUOTE, KEY_LB_BOARD, KEY_LB_FIGURES, KEY_LB_ROWS, KEY_LB_VERSIONS
from mdp_cache.records import DailyBar, ReferenceData
from mdp_core.calendar import DaySchedule, MarketCalendar
from mdp_core.clock import ET, NS_PER_SECOND, to_ns
from mdp_core.events import LimitUpLimitDown, MarketEvent, MinuteAggregate, SecondAggregate

__all__ = ["DEFAULT_BOARD_SIZE", "LeaderboardAnalyzer"]

DEFAULT_BOARD_SIZE: Final = 100

_NS_PER_MS: Final = 1_000_000
_DAY_START: Final = time(4, 0)

Aggregate = SecondAggregate | MinuteAggregate


#: Session slots of a symbol's figures, in :class:`_Symbol` order, with their term names.
_SESSIONS: Final = ("pm", "rg", "ah")
_NO_SESSION: Final = -1
#: The figures' term groups in the lattice's canonical (ascending name) order: each session
#: slot's f, h and l terms, and (no slot) the regular session's first open, "op", and the
#: reference completeness, "rf".
_RENDER_ORDER: Final[tuple[tuple[int | None, str], ...]] = (
    (2, "ah"),
    (None, "op"),
    (0, "pm"),
    (None, "rf"),
    (1, "rg"),
)
#: The figure saying how complete the reference data of some replica's row was (the
#: greatest :attr:`~mdp_cache.records.ReferenceData.completeness` offered): a replica whose
#: lookup has not landed or failed is refused while it lacks it, takes the stored row's
#: reference parts (:meth:`LeaderboardAnalyzer._adopt_reference`) and offers its row again,
#: so a later bar never replaces a row that had the previous close with one that has not.
_REFERENCE_TERM: Final = "rf"

#: A session's running figures: [first_ms, high, high_ms, low, low_ms].
_Figures = list[float]


class _Symbol:
    """What the analyzer knows about one symbol today."""

    __slots__ = (
        "_records",
        "_text",
        "base",
        "event",
        "first_regular",
        "reference",
        "reference_seen",
        "sessions",
    )

    def __init__(self) -> None:
        self.event: Aggregate | None = None
        #: (start_ms, open) of the earliest regular-session bar seen (fallback session open).
        self.first_regular: tuple[int, float] | None = None
        self.reference: ReferenceData | None = None
        #: The reference completeness MDC's joined figures say some replica had (``rf``).
        self.reference_seen = 0
        #: Per session (pre-market, regular, after-hours): its figures, or None if unseen.
        self.sessions: list[_Figures | None] = [None, None, None]
        #: The figures MDC holds as far as this replica knows (see ``PutMerged.base``): after
        #: an offer, MDC holds exactly its figures unless it refused the row for figures this
        #: replica lacked (then the refusal resets it: unknown).
        self.base = ""
        #: The figures' lattice text and row records, made once per change (None: to make).
        self._text: str | None = None
        self._records: list[SessionFigures | None] | None = None

    def fold(self, slot: int, end_ms: int, high: float, low: float) -> bool:
        """Fold one bar (ending at ``end_ms``) into session ``slot``; whether a figure changed."""
        return self._join(slot, [end_ms, high, end_ms, low, end_ms])

    def _join(self, slot: int, more: _Figures) -> bool:
        """Join figures ``more`` into session ``slot`` (max high, min low, earliest times)."""
        figures = self.sessions[slot]
        if figures is None:
            self.sessions[slot] = more
            self._text = self._records = None
            return True
        changed = False
        if more[0] < figures[0]:
            figures[0] = more[0]
            changed = True
        if more[1] > figures[1] or (more[1] == figures[1] and more[2] < figures[2]):
            figures[1], figures[2] = more[1], more[2]
            changed = True
        if more[3] < figures[3] or (more[3] == figures[3] and more[4] < figures[4]):
            figures[3], figures[4] = more[3], more[4]
            changed = True
        if changed:
            self._text = self._records = None
        return changed

    def open_at(self, start_ms: int, price: float) -> bool:
        """Fold a regular-session bar's open; whether the session open changed."""
        first = self.first_regular
        if first is None or start_ms < first[0] or (start_ms == first[0] and price < first[1]):
            self.first_regular = (start_ms, price)
            self._text = None  # the records hold no opening
            return True
        return False

    def set_reference(self, data: ReferenceData) -> None:
        """Attach reference data (its completeness is a figure: ``rf``)."""
        self.reference = data
        self._text = None

    def figures_text(self) -> str:
        """The figures as lattice text (:mod:`mdp_cache.lattice`), rendered once per change.

        Most bars move no figure, and a row is offered per changed symbol per flush: caching
        the text spares the rendering (~8 µs through :func:`~mdp_cache.lattice.render`) for
        every row whose figures stand still.
        """
        text = self._text
        if text is None:
            text = self._text = self._render()
        return text

    def records(self) -> list[SessionFigures | None]:
        """The session figures as row records (pre-market, regular, after-hours)."""
        records = self._records
        if records is None:
            records = self._records = [_session_figures(figures) for figures in self.sessions]
        return records

    def _render(self) -> str:
        """:func:`mdp_cache.lattice.render` of the figures, written out in its name order."""
        parts: list[str] = []
        for slot, name in _RENDER_ORDER:
            if name == _REFERENCE_TERM:
                own = self.reference.completeness if self.reference is not None else 0
                known = max(own, self.reference_seen)
                if known:
                    parts.append(f"{name}{lattice.MAX}{known}@0")
                continue
            if slot is None:
                if self.first_regular is not None:
                    start_ms, price = self.first_regular
                    parts.append(f"{name}{lattice.MIN}{start_ms}@{price!r}")
                continue
            figures = self.sessions[slot]
            if figures is None:
                continue
            first_ms, high, high_ms, low, low_ms = figures
            parts.append(
                f"{name}f{lattice.MIN}{int(first_ms)}@0,"
                f"{name}h{lattice.MAX}{high!r}@{int(high_ms)},"
                f"{name}l{lattice.MIN}{low!r}@{int(low_ms)}"
            )
        return ",".join(parts)

    def hydrate(self, text: str) -> bool:
        """Fold figures MDC joined from every replica; whether anything changed.

        Raises:
            ValueError: ``text`` is not lattice text.
        """
        changed = False
        terms = lattice.parse(text)
        for slot, name in enumerate(_SESSIONS):
            first, high, low = terms.get(name + "f"), terms.get(name + "h"), terms.get(name + "l")
            if first is None or high is None or low is None:
                continue
            more: _Figures = [int(first[1]), float(high[1]), int(high[2])]
            more += [float(low[1]), int(low[2])]
            changed |= self._join(slot, more)
        opening = terms.get("op")
        if opening is not None:
            changed |= self.open_at(int(opening[1]), float(opening[2]))
        known = terms.get(_REFERENCE_TERM)
        own = self.reference.completeness if self.reference is not None else 0
        if known is not None and int(known[1]) > max(own, self.reference_seen):
            # Some replica's row had reference parts this one lacks: it offers its row
            # again once it took them from the stored row (LeaderboardAnalyzer._adopt).
            self.reference_seen = int(known[1])
            self._text = None
            changed = True
        return changed


class LeaderboardAnalyzer:
    """Top volume / gappers / gainers with quote records; state merged newer-wins.

    Args:
        calendar: The market calendar (trading days, 09:30 open, holidays, half days).
        board_size: Rows per board.
        compose_interval_seconds: Seconds between two board compositions.
    """

    name: ClassVar[str] = "leaderboard"
    consumes: ClassVar[frozenset[str]] = frozenset({"A", "AM", "LULD"})

    def __init__(
        self,
        calendar: MarketCalendar | None = None,
        *,
        board_size: int = DEFAULT_BOARD_SIZE,
        compose_interval_seconds: float = 1.0,
    ) -> None:
        self.calendar = calendar if calendar is not None else MarketCalendar()
        self.board_size = board_size
        self.compose_interval_ns = int(compose_interval_seconds * NS_PER_SECOND)
        self.sync_interval_ns = self.compose_interval_ns
        self._halts = HaltBook()
        self._day: date | None = None
        self._day_range = (0, 0)
        self._open_ns = 0
        self._symbols: dict[str, _Symbol] = {}
        self._changed: set[str] = set()
        self._wanted: list[tuple[str, date]] = []
        self._schedule: DaySchedule | None = None
        #: Bars dropped and never folded, by reason (``high_below_low``,
        #: ``non_positive_price``, ``price_outside_bar``, ``stale_day``).
        self.rejected: Counter[str] = Counter()
        self._reported: Counter[str] = Counter()
        #: Rows refused by MDC whose stored state was folded back in (hydrations).
        self.hydrations = 0
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
                        self.rejected["stale_day"] += 1
                        continue
                if self._fold_bar(event, symbols):
                    changed.add(event.symbol)
            elif kind is LimitUpLimitDown:
                self._apply_luld(cast(LimitUpLimitDown, event))
            else:
                self.ignored_events += 1

    def _fold_bar(self, event: Aggregate, symbols: dict[str, _Symbol]) -> bool:
        """Fold one bar of the current day into its symbol; whether the row changed.

        A bar that cannot be right is counted in :attr:`rejected` and folded into nothing.
        """
        problem = bar_problem(event)
        if problem is not None:
            self.rejected[problem] += 1
            return False
        low, high = event.low, event.high
        state = symbols.get(event.symbol)
        if state is None:
            state = symbols[event.symbol] = _Symbol()
            self._wanted.append((event.symbol, self._day_or_raise()))
        start_ms = event.start_ms
        slot = self._slot(start_ms * _NS_PER_MS)
        # Times are bar ends: when an extreme became known (a minute bar's high is news at the
        # minute's end, after the seconds it spans).
        changed = slot != _NO_SESSION and state.fold(slot, event.end_ms, high, low)
        if slot == 1 and state.open_at(start_ms, event.open):
            changed = True
        old = state.event
        if (
            old is None
            or event.end_ms > old.end_ms
            or (event.end_ms == old.end_ms and _order(event) > _order(old))
        ):
            state.event = event
            changed = True
        return changed

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

        Halt records are kept (newer news replaces them), but a row shows only a halt of its
        own trading day: a LULD pause does not outlast the trading day it began in.
        """
        self._day = day
        self._symbols = {}
        self._changed = set()
        self._wanted = []
        schedule = self.calendar.schedule(day)
        self._schedule = schedule
        self._open_ns = schedule.regular_open_ns if schedule is not None else 0
        # Every instant in [04:00 of the day, 04:00 of the next calendar day) belongs to it.
        self._day_range = (
            to_ns(datetime.combine(day, _DAY_START, tzinfo=ET)),
            to_ns(datetime.combine(day + timedelta(days=1), _DAY_START, tzinfo=ET)),
        )

    def _slot(self, start_ns: int) -> int:
        """The session slot (pre-market 0, regular 1, after-hours 2) a bar starting then is in."""
        schedule = self._schedule
        if schedule is None or not schedule.day_start_ns <= start_ns < schedule.extended_close_ns:
            return _NO_SESSION
        if start_ns < schedule.regular_open_ns:
            return 0
        return 1 if start_ns < schedule.regular_close_ns else 2

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
        """Attach reference data; the symbol's row is re-emitted on the next flush.

        A day's reference does not change, so parts already known (adopted from a stored row,
        see :meth:`_adopt`, or from an earlier lookup) stay when a lookup lacks them: one that
        failed takes nothing away. Reference that only adds the time-of-day volume profile
        (it arrives after the rest) is attached without re-emitting: the symbol's next bar
        carries ``rvol_tod``. Re-emitting would offer a second payload at the version another
        replica may have written already (the profile is not part of the version's
        completeness).
        """
        if data.trading_day != self._day:
            return
        state = self._symbols.get(data.symbol)
        if state is None:
            return
        old = state.reference
        if old is not None:
            data = _joined(data, old)
            if data == old:
                return
        state.set_reference(data)
        if (
            old is not None
            and data.volume_profile is not None
            and old.volume_profile is None
            and msgspec.structs.replace(data, volume_profile=None) == old
        ):
            return
        if state.event is not None:
            self._changed.add(data.symbol)

    # --- output -------------------------------------------------------------------------

    def collect(self, now_ns: int) -> Output:
        """Rows of the symbols that changed, as merged state writes that publish quote records.

        The quote records are published by the backend once it stored the rows (see
        :class:`~mdp_cache.ops.PutMerged`), so this output carries no widget writes itself.
        """
        ops: list[StateOp] = list(self._halts.take_ops())
        if self._changed and self._day is not None:
            ops.extend(self.rows_output(self._changed))
            self._changed = set()
        if self._day is not None:
            today = self.calendar.trading_day(now_ns)
            if today > self._day:
                self._roll(today)  # after the last rows of the old day were emitted
        return Output(state=ops)

    def rows_output(self, symbols: set[str]) -> list[PutMerged]:
        """Encode the rows of ``symbols`` as merged state writes publishing quote records."""
        assert self._day is not None
        day = self._day
        day_text = day.isoformat()
        rows_key = KEY_LB_ROWS.name(day=day_text)
        versions_key = KEY_LB_VERSIONS.name(day=day_text)
        figures_key = KEY_LB_FIGURES.name(day=day_text)
        board_keys = tuple(KEY_LB_BOARD.name(day=day_text, board=board.value) for board in Board)
        ttl = KEY_LB_ROWS.ttl or 0
        epoch = day.toordinal()
        ops: list[PutMerged] = []
        for symbol in symbols:
            state = self._symbols[symbol]
            event = state.event
            if event is None:
                continue
            row, scores = self._row(event, state, day)
            completeness = state.reference.completeness if state.reference is not None else 0
            name = FEED_QUOTE.of(symbol)
            figures = state.figures_text()
            ops.append(
                PutMerged(
                    rows_key=rows_key,
                    versions_key=versions_key,
                    figures_key=figures_key,
                    member=symbol,
                    version=self._version(symbol, event, completeness),
                    payload=encode_row(row),
                    figures=figures,
                    score_keys=board_keys,
                    scores=scores,
                    ttl=ttl,
                    publish=name,
                    epoch=epoch,
                    base=state.base,
                    tie_fields=_ROW_TIE_FIELDS,
                )
            )
            state.base = figures
        return ops

    def take_rejected(self) -> Counter[str]:
        """Bars dropped since the last call, by reason (see :attr:`rejected`)."""
        taken = self.rejected - self._reported
        self._reported = self.rejected.copy()
        return taken

    # --- Hydrating: rows MDC refused because this replica lacked something ----------------

    def refused(self, refusals: Sequence[Refused]) -> None:
        """Fold the stored rows and joined figures of refused rows; changed ones are re-sent.

        A refusal whose stored state adds nothing (this replica's row only lost on version,
        e.g. its reference data is not complete yet) is not re-sent until the symbol changes
        again, so two replicas never bounce a row between them.
        """
        if self._day is None:
            return
        rows_key = KEY_LB_ROWS.name(day=self._day.isoformat())
        for refusal in refusals:
            state = self._symbols.get(refusal.member)
            if refusal.rows_key != rows_key or state is None:
                continue  # another day's row, or a symbol this replica forgot
            self.hydrations += 1
            # MDC holds figures this replica lacked; until it offers their join, it does not
            # know what MDC holds (and hydration may not fold every term of it).
            state.base = ""
            try:
                changed = state.hydrate(refusal.figures)
                if refusal.payload is not None:
                    changed |= self._adopt(state, refusal.payload)
            except (ValueError, msgspec.DecodeError, msgspec.ValidationError):
                self.rejected["bad_snapshot"] += 1
                continue
            if changed:
                self._changed.add(refusal.member)

    def _adopt(self, state: _Symbol, payload: bytes) -> bool:
        """Take the stored row's bar if it is later, and its reference data where it knows more.

        A new owner of a symbol (a handoff, a restart) has its first rows refused for the
        figures it lacks before its own reference lookup lands; without the stored row's
        previous day, its next row (a later bar, so a newer version) would replace the
        stored one with no previous close, and the symbol would drop off the gappers.
        """
        stored = _ROW_DECODER.decode(payload)
        # Not a change to re-send: a refusal either hands back figures this replica lacked
        # (its row is re-sent for them) or a row at least as new, which has these parts.
        self._adopt_reference(state, stored)
        bar = SecondAggregate(
            symbol=stored.symbol,
            volume=stored.volume,
            accumulated_volume=stored.accumulated_volume,
            official_open=stored.official_open,
            vwap=stored.vwap,
            open=stored.open,
            high=stored.high,
            low=stored.low,
            close=stored.price,
            day_vwap=stored.day_vwap,
            average_size=stored.average_size,
            start_ms=stored.start_ms,
            end_ms=stored.end_ms,
        )
        old = state.event
        if old is None or _order(bar) > _order(old):
            state.event = bar
            return True
        return False

    def _adopt_reference(self, state: _Symbol, stored: Row) -> None:
        """Fill the parts of ``state``'s reference data it lacks from a stored row of today."""
        prev_day: DailyBar | None = None
        if (
            stored.prev_close is not None
            and stored.prev_open is not None
            and stored.prev_high is not None
            and stored.prev_low is not None
            and stored.prev_volume is not None
        ):
            prev_day = DailyBar(
                # Not on the row, and read by nothing a row shows: a date before the day.
                day=stored.trading_day - timedelta(days=1),
                open=stored.prev_open,
                high=stored.prev_high,
                low=stored.prev_low,
                close=stored.prev_close,
                volume=stored.prev_volume,
                vwap=stored.prev_vwap,
            )
        found = ReferenceData(
            symbol=stored.symbol,
            trading_day=stored.trading_day,
            prev_day=prev_day,
            avg_volume=stored.avg_volume,
            free_float=stored.free_float,
        )
        own = state.reference
        state.set_reference(found if own is None else _joined(own, found))

    def _version(self, symbol: str, event: Aggregate, completeness: int) -> int:
        """The row's version: its latest news or bar, an order among equals, completeness.

        A halted symbol makes no new bars, so a replica that learns of a halt (or of the
        resume) rewrites the row of the very bar other replicas wrote without the news.
        Halt news from after the bar makes the news's time the row's time: a resume five
        minutes after a halt outranks the halt whatever the time since the last bar (a
        clamped offset from the bar made them equal past 127 s, and the row stayed
        "halted"); among rows of that news time, the one whose bar ends later wins
        (orders 129-255). A row whose news is not newer than its bar has the bar's time;
        among those, the newer news wins (orders 1-128; 0 without news). Below 2**53
        until the year 2109.
        """
        end_ms = event.end_ms
        news_ms = self._halts.version(symbol)
        if news_ms >= end_ms:
            time_ms, order = news_ms, 255 - min(126, (news_ms - end_ms) // 1000)
        else:
            time_ms, order = end_ms, (max(1, 128 + (news_ms - end_ms) // 1000) if news_ms else 0)
        return (((time_ms << HALT_RECENCY_BITS) + order) << 3) + completeness

    def _row(
        self, event: Aggregate, state: _Symbol, day: date
    ) -> tuple[Row, tuple[float | None, float | None, float | None]]:
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
            halted=self._halts.halted(event.symbol, self._day_range[0] // _NS_PER_MS),
            sessions=state.records(),
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


_ROW_DECODER: Final = msgspec.json.Decoder(Row)


def _joined(first: ReferenceData, then: ReferenceData) -> ReferenceData:
    """``first``'s reference data, with the parts it lacks taken from ``then``."""
    return msgspec.structs.replace(
        first,
        prev_day=first.prev_day if first.prev_day is not None else then.prev_day,
        avg_volume=first.avg_volume if first.avg_volume is not None else then.avg_volume,
        free_float=first.free_float if first.free_float is not None else then.free_float,
        volume_profile=(
            first.volume_profile if first.volume_profile is not None else then.volume_profile
        ),
    )


def _session_figures(figures: _Figures | None) -> SessionFigures | None:
    if figures is None:
        return None
    first_ms, high, high_ms, low, low_ms = figures
    return SessionFigures(
        first_ms=int(first_ms), high=high, high_ms=int(high_ms), low=low, low_ms=int(low_ms)
    )


def _order(event: Aggregate) -> tuple[int, int, int, float]:
    """Which of two aggregates of one symbol is the later (end time, then running totals)."""
    return (event.end_ms, event.accumulated_volume, event.volume, event.close)


#: The row fields after the bar end in :func:`_order`: MDC keeps, of two rows of one version
#: (two bars ending together, from two replicas), the one this order says is later.
_ROW_TIE_FIELDS: Final = ("accumulated_volume", "volume", "price")
