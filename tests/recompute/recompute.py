"""An independent recomputation of what the widget cache must serve, from the recorded feed.

This module is the test's oracle. It deliberately imports nothing of the platform (no
``mdp_analyzers``, ``mdp_cache``, ``mdp_scanner``, ``mdp_processor``, not even ``mdp_core``): only
the standard library. The rules are restated here from the documentation, in the most direct
form, so that a bug in the pipeline cannot hide behind the same bug in the oracle:

* **Bars.** Every ``A`` and ``AM`` message the listener received is a bar. A bar with a
  non-finite or non-positive price, or with ``h < l``, is bad and counts for nothing.
* **Sessions** (US/Eastern, by the bar's *start* time): pre-market 04:00-09:30, regular
  09:30-close (16:00, or the early close of a half day), after-hours close-20:00.
* **Ranges** (``range:{symbol}``): per session, high = max ``h`` and low = min ``l`` over every
  good bar of the symbol starting in it; day high/low over the sessions. Sessions without a bar
  are ``null``. Its ``price`` is the close of the symbol's latest bar (the rule of a board row
  below) among the bars starting in a session.
* **The day of a board row** is the trading day of the bar's *end* (04:00 ET to 04:00 ET); the
  row is built from the symbol's latest bar of the day: greatest end, then greatest accumulated
  volume, window volume, close.
* **top_volume**: every symbol, by the latest bar's ``av``.
* **top_gappers**: % change of the latest close vs the previous close (reference data), listed
  only when > 0.
* **top_gainers**: % change of the latest close vs the regular-session open: the latest bar's
  official open ``op`` when present and > 0, else the open of the earliest regular-session bar of
  the day; only when the latest bar ends at or after 09:30 ET; listed only when > 0. Before 09:30
  the board is empty with status ``pre_open``.
* Boards rank by the exact score; only exact ties may appear in either order. Displayed
  percentages may be rounded to 4 decimals, changes to 6.

* **Trades.** Every ``T`` message is a trade. A trade with a price outside ``0 <= p <= 1e9``
  (or not finite), a size outside ``0 <= s <= 1e15``, a negative time or an invalid symbol is
  bad and counts for nothing. A trade's identity is its exchange, trade id and time; with an
  empty id, its sequence number ``q`` and time; a trade whose identity its symbol's window
  already holds is a duplicate (with neither an id nor ``q``, never).
* **Trade statistics** (``trades:stats:{symbol}``): over the symbol's last 1,000 distinct
  trades in arrival order: count, total and largest size, average size (to cents), the latest
  trade by time (price, size, exchange; equal times: any of them) and the time between the
  window's oldest and newest entries.
* **Top trades** (``trades:top``): the 50 largest distinct trades by exact value (price x size;
  the displayed value is rounded to cents) whose second lies from ``window_s`` seconds before
  the document's ``as_of_ms`` to 5 seconds after it. Only exact ties may swap or cross the cut.

HOD/LOD alerts (``alerts:hod`` / ``alerts:lod``) are raised at the granularity the pipeline sees
(several bars may be folded between two quote records), so they are checked by properties that
hold whatever the granularity, see :func:`check_alerts`.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from fractions import Fraction
from typing import Any, Final
from zoneinfo import ZoneInfo

__all__ = [
    "BOARDS",
    "RANGE_FIELDS",
    "WINDOW_TRADES",
    "Bar",
    "Expected",
    "Mismatch",
    "Print",
    "Report",
    "Schedule",
    "WindowFigures",
    "bars_of",
    "check_alerts",
    "compare_boards",
    "compare_ranges",
    "compare_top_trades",
    "compare_trade_stats",
    "format_report",
    "recompute",
    "trade_stats",
    "trades_of",
]

ET: Final = ZoneInfo("America/New_York")
BOARDS: Final = ("top_volume", "top_gappers", "top_gainers")
SESSIONS: Final = ("pre_market", "regular", "after_hours")
RANGE_FIELDS: Final = (
    "pre_market_high",
    "pre_market_low",
    "regular_high",
    "regular_low",
    "after_hours_high",
    "after_hours_low",
    "day_high",
    "day_low",
)
#: Trades in a symbol's statistics window, on the board, and how far the board looks.
WINDOW_TRADES: Final = 1_000
TOP_TRADES: Final = 50
BOARD_AHEAD_SECONDS: Final = 5
#: A displayed trade value is rounded to cents.
VALUE_TOLERANCE: Final = 0.005 + 1e-9
_SYMBOL: Final = re.compile(r"[^\s:*?\[\]]{1,16}")
#: Displayed percentages may be rounded to 4 decimals, changes to 6 (round only for display).
PCT_TOLERANCE: Final = 0.5e-4 + 1e-9
CHANGE_TOLERANCE: Final = 0.5e-6 + 1e-9


def _ms(day: date, at: time) -> int:
    return int(datetime.combine(day, at, tzinfo=ET).timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class Schedule:
    """The instants (epoch ms) that matter on one trading day.

    Args:
        day: the trading day (a full or half trading day; the test picks one).
        close: the regular session's end, ET (13:00 on a half day).
    """

    day: date
    close: time = time(16, 0)

    @property
    def day_start_ms(self) -> int:
        return _ms(self.day, time(4, 0))

    @property
    def day_end_ms(self) -> int:
        """04:00 ET of the next calendar day: the end of the trading day for board rows."""
        return _ms(self.day + timedelta(days=1), time(4, 0))

    @property
    def open_ms(self) -> int:
        return _ms(self.day, time(9, 30))

    @property
    def close_ms(self) -> int:
        return _ms(self.day, self.close)

    @property
    def after_end_ms(self) -> int:
        return _ms(self.day, time(20, 0))

    def session_of(self, start_ms: int) -> str | None:
        """The session a bar starting at ``start_ms`` belongs to (None: outside the day's)."""
        if self.day_start_ms <= start_ms < self.open_ms:
            return "pre_market"
        if self.open_ms <= start_ms < self.close_ms:
            return "regular"
        if self.close_ms <= start_ms < self.after_end_ms:
            return "after_hours"
        return None


@dataclass(frozen=True, slots=True)
class Bar:
    """One aggregate bar as the listener received it, with where it sits on the tape."""

    kind: str
    symbol: str
    open: float
    high: float
    low: float
    close: float
    volume: float
    accumulated_volume: float
    official_open: float | None
    start_ms: int
    end_ms: int
    #: Position of the bar on the tape (frame index, index in frame): arrival order.
    arrival: tuple[int, int]
    #: Wall-clock receipt time of its frame (monotonic seconds).
    received_seconds: float

    @property
    def good(self) -> bool:
        prices = (self.open, self.high, self.low, self.close)
        return all(math.isfinite(p) and p > 0 for p in prices) and self.high >= self.low

    @property
    def order(self) -> tuple[int, float, float, float]:
        """Which of two bars of a symbol is the later one."""
        return (self.end_ms, self.accumulated_volume, self.volume, self.close)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _messages(
    frames: Iterable[tuple[float, str]],
) -> Iterator[tuple[tuple[int, int], float, object]]:
    """Each message of the tape's JSON-array frames: its arrival (frame index, index in
    frame), its frame's receipt time and the message; frames that are not arrays are skipped."""
    for index, (received_seconds, text) in enumerate(frames):
        try:
            messages = json.loads(text)
        except ValueError:
            continue
        if not isinstance(messages, list):
            continue
        for position, message in enumerate(messages):
            yield (index, position), received_seconds, message


def bars_of(frames: Iterable[tuple[float, str]]) -> list[Bar]:
    """Every ``A``/``AM`` bar of the tape (``(received_seconds, text)`` pairs), in arrival order.

    Messages that are not bars, or bars missing a field, are left out (they are not on the
    tape as far as any figure is concerned).
    """
    bars: list[Bar] = []
    for arrival, received_seconds, message in _messages(frames):
        bar = _bar(message, arrival, received_seconds)
        if bar is not None:
            bars.append(bar)
    return bars


def _bar(message: object, arrival: tuple[int, int], received_seconds: float) -> Bar | None:
    if not isinstance(message, dict) or message.get("ev") not in {"A", "AM"}:
        return None
    symbol = message.get("sym")
    numbers = [_number(message.get(k)) for k in ("o", "h", "l", "c", "v", "av")]
    start, end = message.get("s"), message.get("e")
    if not isinstance(symbol, str) or not isinstance(start, int) or not isinstance(end, int):
        return None
    o, h, low, c, v, av = numbers
    if o is None or h is None or low is None or c is None or v is None or av is None:
        return None
    return Bar(
        kind=str(message["ev"]),
        symbol=symbol,
        open=o,
        high=h,
        low=low,
        close=c,
        volume=v,
        accumulated_volume=av,
        official_open=_number(message.get("op")),
        start_ms=start,
        end_ms=end,
        arrival=arrival,
        received_seconds=received_seconds,
    )


@dataclass(frozen=True, slots=True)
class BoardRow:
    """What one symbol must show on one board: its exact score and displayed figures."""

    symbol: str
    #: The exact score: prices are decimals on the wire, so ratios are computed as fractions
    #: and two mathematically equal moves are an exact tie, whatever float rounding does.
    score: Fraction
    figures: Mapping[str, float | None]


@dataclass(slots=True)
class Expected:
    """Everything recomputed from the tape."""

    schedule: Schedule
    #: symbol -> field -> value (``RANGE_FIELDS``), for symbols with a bar in a session.
    ranges: dict[str, dict[str, float | None]] = field(default_factory=dict)
    #: board -> rows in rank order (exact score, descending; ties in symbol order).
    boards: dict[str, list[BoardRow]] = field(default_factory=dict)
    #: (symbol, session) -> good bars starting in the session, in arrival order.
    session_bars: dict[tuple[str, str], list[Bar]] = field(default_factory=dict)
    #: symbol -> its range document's price: the latest session bar's close, and that bar.
    prices: dict[str, Bar] = field(default_factory=dict)


def recompute(bars: Sequence[Bar], schedule: Schedule, prev_close: Mapping[str, float]) -> Expected:
    """Recompute ranges and boards from the tape's bars (see the module docstring)."""
    expected = Expected(schedule=schedule)
    good = [bar for bar in bars if bar.good]
    by_session: dict[tuple[str, str], list[Bar]] = defaultdict(list)
    for bar in good:
        session = schedule.session_of(bar.start_ms)
        if session is not None:
            by_session[bar.symbol, session].append(bar)
    expected.session_bars = dict(by_session)
    for (symbol, session), members in sorted(by_session.items()):
        doc = expected.ranges.setdefault(symbol, dict.fromkeys(RANGE_FIELDS))
        doc[f"{session}_high"] = max(b.high for b in members)
        doc[f"{session}_low"] = min(b.low for b in members)
        latest = max(members, key=lambda b: b.order)
        held = expected.prices.get(symbol)
        if held is None or latest.order > held.order:
            expected.prices[symbol] = latest
    for doc in expected.ranges.values():
        highs = [v for k, v in doc.items() if k.endswith("_high") and v is not None]
        lows = [v for k, v in doc.items() if k.endswith("_low") and v is not None]
        doc["day_high"] = max(highs)
        doc["day_low"] = min(lows)
    expected.boards = _boards(good, schedule, prev_close)
    return expected


def _boards(
    good: Sequence[Bar], schedule: Schedule, prev_close: Mapping[str, float]
) -> dict[str, list[BoardRow]]:
    today = [b for b in good if schedule.day_start_ms <= b.end_ms < schedule.day_end_ms]
    latest: dict[str, Bar] = {}
    first_regular: dict[str, Bar] = {}
    for bar in today:
        held = latest.get(bar.symbol)
        if held is None or bar.order > held.order:
            latest[bar.symbol] = bar
        if schedule.session_of(bar.start_ms) == "regular":
            first = first_regular.get(bar.symbol)
            if first is None or (bar.start_ms, bar.arrival) < (first.start_ms, first.arrival):
                first_regular[bar.symbol] = bar
    volume: list[BoardRow] = []
    gappers: list[BoardRow] = []
    gainers: list[BoardRow] = []
    for symbol, bar in latest.items():
        price = bar.close
        volume.append(
            BoardRow(
                symbol,
                _exact(bar.accumulated_volume),
                {"accumulated_volume": bar.accumulated_volume},
            )
        )
        prev = prev_close.get(symbol)
        if prev is not None and prev > 0 and (gap := _pct(price, prev)) > 0:
            gappers.append(
                BoardRow(
                    symbol,
                    gap,
                    {
                        "price": price,
                        "prev_close": prev,
                        "change": price - prev,
                        "pct_change": float(gap),
                    },
                )
            )
        if bar.end_ms < schedule.open_ms:
            continue
        if bar.official_open is not None and bar.official_open > 0:
            session_open: float | None = bar.official_open
        else:
            first = first_regular.get(symbol)
            session_open = first.open if first is not None else None
        if session_open is None:
            continue
        gain = _pct(price, session_open)
        if gain > 0:
            gainers.append(
                BoardRow(
                    symbol,
                    gain,
                    {
                        "price": price,
                        "session_open": session_open,
                        "change_since_open": price - session_open,
                        "pct_change_since_open": float(gain),
                    },
                )
            )
    return {
        name: sorted(rows, key=lambda r: (-r.score, r.symbol))
        for name, rows in zip(BOARDS, (volume, gappers, gainers), strict=True)
    }


def _exact(value: float) -> Fraction:
    """The decimal the wire carried (the shortest repr of the float), as an exact fraction."""
    return Fraction(repr(value))


def _pct(price: float, base: float) -> Fraction:
    return (_exact(price) - _exact(base)) / _exact(base) * 100


# --- trades ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Print:
    """One trade as the listener received it, with where it sits on the tape."""

    symbol: str
    exchange: int
    trade_id: str
    price: float
    size: int
    timestamp_ms: int
    arrival: tuple[int, int]
    sequence: int | None = None

    @property
    def good(self) -> bool:
        return (
            _SYMBOL.fullmatch(self.symbol) is not None
            and math.isfinite(self.price)
            and 0 <= self.price <= 1e9
            and 0 <= self.size <= 10**15
            and self.timestamp_ms >= 0
        )

    @property
    def identity(self) -> str:
        """Exchange, trade id and time; with an empty id, ``q`` and time; else empty.

        An empty identity is never a duplicate.
        """
        if self.trade_id:
            return f"{self.exchange}:{self.trade_id}:{self.timestamp_ms}"
        if self.sequence is not None:
            return f"q{self.sequence}:{self.timestamp_ms}"
        return ""

    @property
    def listing(self) -> tuple[object, ...]:
        """What names the trade in a board row: symbol, exchange, id, time; ``q`` if no id."""
        sequence = None if self.trade_id else self.sequence
        return (self.symbol, self.exchange, self.trade_id, self.timestamp_ms, sequence)

    @property
    def value(self) -> Fraction:
        """The exact value of the decimal price the wire carried times the size."""
        return _exact(self.price) * self.size

    @property
    def second(self) -> int:
        return self.timestamp_ms // 1000


def trades_of(frames: Iterable[tuple[float, str]]) -> list[Print]:
    """Every ``T`` message of the tape with the fields a trade needs, in arrival order."""
    prints: list[Print] = []
    for arrival, _, message in _messages(frames):
        if not isinstance(message, dict) or message.get("ev") != "T":
            continue
        symbol, exchange, trade_id = message.get("sym"), message.get("x"), message.get("i")
        price, size, at = _number(message.get("p")), message.get("s"), message.get("t")
        if not (
            isinstance(symbol, str)
            and isinstance(exchange, int)
            and isinstance(trade_id, str)
            and price is not None
            and isinstance(size, int)
            and isinstance(at, int)
        ):
            continue
        sequence = message.get("q")
        if not isinstance(sequence, int) or isinstance(sequence, bool):
            sequence = None
        prints.append(Print(symbol, exchange, trade_id, price, size, at, arrival, sequence))
    return prints


@dataclass(frozen=True, slots=True)
class WindowFigures:
    """What a symbol's statistics document must say, from its window of distinct trades."""

    entries: tuple[Print, ...]
    #: Every trade the window took in, evicted ones too (the latest trade is the latest of all).
    taken: tuple[Print, ...]

    @property
    def filled(self) -> bool:
        """Whether a trade ever left the window (its figures then depend on arrival order)."""
        return len(self.taken) > len(self.entries)

    @property
    def count(self) -> int:
        return len(self.entries)

    @property
    def total_volume(self) -> int:
        return sum(p.size for p in self.entries)

    @property
    def max_size(self) -> int:
        return max(p.size for p in self.entries)

    @property
    def latest(self) -> list[Print]:
        """The trades of the latest time: any of them is the latest trade."""
        newest = max(p.timestamp_ms for p in self.taken)
        return [p for p in self.taken if p.timestamp_ms == newest]

    @property
    def time_span_ms(self) -> int:
        return abs(self.entries[-1].timestamp_ms - self.entries[0].timestamp_ms)


def trade_stats(prints: Sequence[Print], window: int = WINDOW_TRADES) -> dict[str, WindowFigures]:
    """Each symbol's window: its last ``window`` distinct good trades in arrival order.

    A duplicate is a trade whose identity the window holds when it arrives, so an identity
    that has left the window counts again.
    """
    windows: dict[str, list[Print]] = defaultdict(list)
    taken: dict[str, list[Print]] = defaultdict(list)
    for trade in sorted((p for p in prints if p.good), key=lambda p: p.arrival):
        entries = windows[trade.symbol]
        identity = trade.identity
        if identity and any(e.identity == identity for e in entries):
            continue
        entries.append(trade)
        taken[trade.symbol].append(trade)
        if len(entries) > window:
            del entries[0]
    return {
        symbol: WindowFigures(tuple(entries), tuple(taken[symbol]))
        for symbol, entries in windows.items()
    }


def top_trades(
    prints: Sequence[Print], as_of_ms: int, window_s: int, top_n: int = TOP_TRADES
) -> tuple[list[Print], Fraction | None]:
    """The board as of ``as_of_ms``: the distinct trades inside the window, largest first.

    Returns the board and, when more trades than ``top_n`` compete, the value at the cut
    (trades of exactly that value may stand in for each other).
    """
    now = as_of_ms // 1000
    distinct: dict[tuple[object, ...], Print] = {}
    for trade in prints:
        if trade.good and now - window_s <= trade.second <= now + BOARD_AHEAD_SECONDS:
            key = (trade.symbol, trade.identity or trade.arrival, trade.price, trade.size)
            distinct.setdefault(key, trade)
    ranked = sorted(distinct.values(), key=lambda p: p.value, reverse=True)
    cut = ranked[top_n - 1].value if len(ranked) > top_n else None
    return ranked[:top_n], cut


# --- comparison -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One compared figure that differs: where, which field, what was expected, what was got."""

    area: str
    symbol: str
    field: str
    expected: object
    got: object


@dataclass(slots=True)
class Report:
    """Mismatches, and how many figures each area compared (for ``right of compared``)."""

    mismatches: list[Mismatch] = field(default_factory=list)
    compared: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def check(self, area: str, symbol: str, name: str, expected: object, got: object) -> None:
        """Compare one figure (floats exactly unless the name says it is rounded)."""
        self.compared[area] += 1
        if not _same(name, expected, got):
            self.mismatches.append(Mismatch(area, symbol, name, expected, got))

    def fail(self, area: str, symbol: str, name: str, expected: object, got: object) -> None:
        """Record a property that does not hold (counted as one compared figure)."""
        self.compared[area] += 1
        self.mismatches.append(Mismatch(area, symbol, name, expected, got))

    def wrong(self, area: str) -> int:
        return sum(1 for m in self.mismatches if m.area == area)

    def merge(self, other: Report) -> None:
        self.mismatches.extend(other.mismatches)
        for area, count in other.compared.items():
            self.compared[area] += count


def _same(name: str, expected: object, got: object) -> bool:
    if expected is None or got is None:
        return expected is None and got is None
    if isinstance(expected, float | int) and isinstance(got, float | int):
        if name.startswith("pct_"):
            return abs(float(got) - float(expected)) <= PCT_TOLERANCE
        if name.startswith("change"):
            return abs(float(got) - float(expected)) <= CHANGE_TOLERANCE
        return float(got) == float(expected)
    return expected == got


def compare_ranges(expected: Expected, documents: Mapping[str, Mapping[str, Any]]) -> Report:
    """Every symbol's session ranges against its ``range:{symbol}`` document."""
    report = Report()
    day = expected.schedule.day.isoformat()
    for symbol, fields in sorted(expected.ranges.items()):
        doc = documents.get(symbol)
        if doc is None:
            report.fail("ranges", symbol, "range document", "present", "missing")
            continue
        report.check("ranges", symbol, "trading_day", day, doc.get("trading_day"))
        for name in RANGE_FIELDS:
            report.check(
                "ranges", symbol, _setter(expected, symbol, name), fields[name], doc.get(name)
            )
        latest = expected.prices[symbol]
        where = f"price ({latest.kind} {_et(latest.start_ms)[:8]}-{_et(latest.end_ms)[:8]})"
        report.check("ranges", symbol, where, latest.close, doc.get("price"))
    for symbol in sorted(set(documents) - set(expected.ranges)):
        if documents[symbol].get("trading_day") == day:
            report.fail("ranges", symbol, "range document", "absent (no bar)", "present")
    return report


def _setter(expected: Expected, symbol: str, name: str) -> str:
    """The field name, with the first bar that reached the session's extreme (for the diff)."""
    session, _, side = name.rpartition("_")
    value = expected.ranges[symbol][name]
    if session == "day" or value is None:
        return name
    bars = [b for b in expected.session_bars.get((symbol, session), ()) if _level(b, side) == value]
    if not bars:
        return name
    first = min(bars, key=lambda b: b.arrival)
    return f"{name} ({first.kind} {_et(first.start_ms)[:8]})"


def compare_boards(
    expected: Expected, documents: Mapping[str, Mapping[str, Any] | None], board_size: int
) -> Report:
    """The three board documents: status, members, order (exact ties may swap) and figures."""
    report = Report()
    schedule = expected.schedule
    for board in BOARDS:
        area = f"board:{board}"
        doc = documents.get(board)
        if doc is None:
            report.fail(area, "-", "document", "present", "missing")
            continue
        report.check(area, "-", "trading_day", schedule.day.isoformat(), doc.get("trading_day"))
        as_of = doc.get("as_of_ms")
        pre_open = board == "top_gainers" and isinstance(as_of, int) and as_of < schedule.open_ms
        report.check(area, "-", "status", "pre_open" if pre_open else "live", doc.get("status"))
        wanted = [] if pre_open else expected.boards[board]
        _compare_board(report, area, wanted, list(doc.get("rows") or []), board_size)
    return report


def _compare_board(
    report: Report,
    area: str,
    wanted: Sequence[BoardRow],
    rows: Sequence[Mapping[str, Any]],
    board_size: int,
) -> None:
    by_symbol = {row.symbol: row for row in wanted}
    shown = wanted[:board_size]
    cut = shown[-1].score if len(wanted) > board_size else None
    got_symbols = [str(row.get("symbol")) for row in rows]
    # Membership: the top N, except that symbols tied with the N-th may stand in for each other.
    must = {r.symbol for r in shown if cut is None or r.score != cut}
    may = must | {r.symbol for r in wanted if cut is not None and r.score == cut}
    report.check(area, "-", "row count", len(shown), len(rows))
    for symbol in sorted(must - set(got_symbols)):
        score = by_symbol[symbol].score
        rank = shown.index(by_symbol[symbol]) + 1
        report.fail(area, symbol, "listed", f"rank {rank}", f"missing (score {float(score)!r})")
    for symbol in got_symbols:
        if symbol not in may:
            report.fail(area, symbol, "listed", "not on the board", "listed")
    # Order: each row's exact score at least the next one's.
    for upper, lower in itertools.pairwise(got_symbols):
        if upper in by_symbol and lower in by_symbol:
            above, below = by_symbol[upper].score, by_symbol[lower].score
            report.compared[area] += 1
            if above < below:
                report.fail(
                    area, f"{upper}>{lower}", "order", f"{float(below)!r} first", float(above)
                )
                report.compared[area] -= 1
    for rank, row in enumerate(rows, start=1):
        symbol = str(row.get("symbol"))
        report.check(area, symbol, "rank", rank, row.get("rank"))
        expected_row = by_symbol.get(symbol)
        if expected_row is None:
            continue
        for name, value in expected_row.figures.items():
            report.check(area, symbol, name, value, row.get(name))


def compare_trade_stats(
    expected: Mapping[str, WindowFigures],
    documents: Mapping[str, Mapping[str, Any]],
    *,
    arrival_order: bool,
) -> Report:
    """Every symbol's ``trades:stats:{symbol}`` document against its window.

    ``arrival_order``: each symbol's trades reached the windows in tape order (one replica,
    or each symbol owned by one), so the window is the tape's. Otherwise (competing replicas
    appending in turn) the count and the latest trade are still exact, the other figures
    too while the window never filled, except the time span, which is then only bounded by
    the window's earliest and latest trades; a filled window's other figures depend on the
    interleaving and are not compared.
    """
    report = Report()
    area = "trade_stats"
    for symbol, figures in sorted(expected.items()):
        doc = documents.get(symbol)
        if doc is None:
            report.fail(area, symbol, "statistics document", "present", "missing")
            continue
        report.check(area, symbol, "trade_count", figures.count, doc.get("trade_count"))
        latest = figures.latest
        report.check(
            area,
            symbol,
            "latest_timestamp_ms",
            latest[0].timestamp_ms,
            doc.get("latest_timestamp_ms"),
        )
        shown = (doc.get("latest_price"), doc.get("latest_size"), doc.get("latest_exchange"))
        report.compared[area] += 1
        if shown not in {(p.price, p.size, p.exchange) for p in latest}:
            wanted = [(p.price, p.size, p.exchange) for p in latest]
            report.fail(area, symbol, "latest (price, size, exchange)", wanted, shown)
        if figures.filled and not arrival_order:
            continue
        report.check(area, symbol, "total_volume", figures.total_volume, doc.get("total_volume"))
        report.check(area, symbol, "max_size", figures.max_size, doc.get("max_size"))
        average = doc.get("avg_size")
        report.compared[area] += 1
        if not (
            isinstance(average, int | float)
            and abs(Fraction(repr(float(average))) - Fraction(figures.total_volume, figures.count))
            <= Fraction(1, 200)
        ):
            report.fail(area, symbol, "avg_size", figures.total_volume / figures.count, average)
        span = doc.get("time_span_ms")
        if arrival_order:
            report.check(area, symbol, "time_span_ms", figures.time_span_ms, span)
        else:
            times = [p.timestamp_ms for p in figures.entries]
            report.compared[area] += 1
            if not (isinstance(span, int) and 0 <= span <= max(times) - min(times)):
                report.fail(area, symbol, "time_span_ms", f"<= {max(times) - min(times)}", span)
    for symbol in sorted(set(documents) - set(expected)):
        report.fail(area, symbol, "statistics document", "absent (no trade)", "present")
    return report


def compare_top_trades(prints: Sequence[Print], document: Mapping[str, Any] | None) -> Report:
    """The ``trades:top`` document against the board recomputed at its own ``as_of_ms``."""
    report = Report()
    area = "trades:top"
    if document is None:
        report.fail(area, "-", "document", "present", "missing")
        return report
    as_of, window_s = document.get("as_of_ms"), document.get("window_s")
    if not isinstance(as_of, int) or not isinstance(window_s, int):
        report.fail(area, "-", "as_of_ms and window_s", "integers", (as_of, window_s))
        return report
    wanted, cut = top_trades(prints, as_of, window_s)
    rows = [row for row in document.get("trades") or [] if isinstance(row, dict)]
    report.check(area, "-", "row count", len(wanted), len(rows))
    by_key: dict[tuple[object, ...], Print] = {p.listing: p for p in wanted}
    tied: set[tuple[object, ...]] = {
        p.listing for p in prints if cut is not None and p.good and p.value == cut
    }
    got: list[Print] = []
    for row in rows:
        key = (
            row.get("symbol"),
            row.get("exchange"),
            row.get("trade_id"),
            row.get("timestamp_ms"),
            row.get("sequence"),
        )
        trade = by_key.get(key)
        if trade is None and key in tied:
            trade = next(p for p in prints if p.listing == key)
        if trade is None:
            report.fail(area, str(key[0]), f"listed {key[2]}", "not on the board", "listed")
            continue
        if trade in got:
            report.fail(area, trade.symbol, f"listed {trade.trade_id}", "once", "twice")
            continue
        got.append(trade)
        report.check(area, trade.symbol, f"{trade.trade_id} price", trade.price, row.get("price"))
        report.check(area, trade.symbol, f"{trade.trade_id} size", trade.size, row.get("size"))
        value = row.get("value")
        report.compared[area] += 1
        if not (
            isinstance(value, int | float) and abs(value - float(trade.value)) <= VALUE_TOLERANCE
        ):
            report.fail(area, trade.symbol, f"{trade.trade_id} value", float(trade.value), value)
    listed = {p.listing for p in got}
    for wanted_key, trade in by_key.items():
        if wanted_key not in listed and (cut is None or trade.value != cut):
            report.fail(
                area,
                trade.symbol,
                f"listed {trade.trade_id}",
                f"value {float(trade.value)}",
                "missing",
            )
    for upper, lower in itertools.pairwise(got):
        report.compared[area] += 1
        if upper.value < lower.value:
            report.fail(
                area,
                f"{upper.symbol}>{lower.symbol}",
                "order",
                f"{float(lower.value)!r} first",
                float(upper.value),
            )
            report.compared[area] -= 1
    return report


def check_alerts(
    expected: Expected,
    hod: Sequence[Mapping[str, Any]],
    lod: Sequence[Mapping[str, Any]],
    *,
    grace_seconds: float,
    cap: int | None = None,
) -> Report:
    """The HOD/LOD alert lists (newest first, as served) against the tape.

    Properties that hold at any granularity:

    * every alert's price is an extreme some good bar of that symbol and session reached;
    * per (symbol, session, direction), alerts are strictly monotonic in event-time order;
    * no alert is served twice;
    * each list is in event-time order (newest first);
    * the extreme is never skipped: when a session's extreme was first reached by a bar that
      reached the listener more than ``grace_seconds`` after the session's first bar of that symbol
      (so the pipeline cannot have folded it into the session's baseline), the last alert of
      (symbol, session, direction) is that extreme; when a list is full (``cap`` elements),
      extremes reached before its oldest element have fallen off its end and are not owed.
    """
    report = Report()
    for direction, served in (("high", hod), ("low", lod)):
        _check_direction(report, expected, direction, served, grace_seconds=grace_seconds, cap=cap)
    return report


def _check_direction(
    report: Report,
    expected: Expected,
    direction: str,
    served: Sequence[Mapping[str, Any]],
    *,
    grace_seconds: float,
    cap: int | None,
) -> None:
    area = f"alerts:{'hod' if direction == 'high' else 'lod'}"
    times = [t for a in served if isinstance(t := a.get("as_of_ms"), int)]
    kept_since = min(times) if cap is not None and len(served) >= cap and times else None
    day = expected.schedule.day.isoformat()
    seen: set[str] = set()
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for position, alert in enumerate(served):
        symbol = str(alert.get("symbol"))
        session = str(alert.get("session"))
        price = alert.get("price")
        key = json.dumps(alert, sort_keys=True)
        report.compared[area] += 1
        if key in seen:
            report.fail(area, symbol, "duplicate", "served once", f"again at index {position}")
        seen.add(key)
        report.check(area, symbol, "trading_day", day, alert.get("trading_day"))
        report.check(area, symbol, "direction", direction, alert.get("direction"))
        reached = {
            (b.high if direction == "high" else b.low)
            for b in expected.session_bars.get((symbol, session), ())
        }
        report.compared[area] += 1
        if price not in reached:
            report.fail(area, symbol, f"{session} price", "an extreme a bar reached", price)
        groups[symbol, session].append(alert)
        if position > 0:
            newer, older = served[position - 1].get("as_of_ms"), alert.get("as_of_ms")
            report.compared[area] += 1
            if isinstance(newer, int) and isinstance(older, int) and newer < older:
                report.fail(
                    area,
                    symbol,
                    "list order",
                    f"index {position} not newer than index {position - 1}",
                    f"{_et(older)} after {_et(newer)}",
                )
    for (symbol, session), alerts in sorted(groups.items()):
        # Oldest first by event time; equal times keep the served order (oldest last served).
        ordered = sorted(reversed(alerts), key=lambda a: int(a.get("as_of_ms") or 0))
        for earlier, later in itertools.pairwise(ordered):
            report.compared[area] += 1
            if not _beyond(later.get("price"), earlier.get("price"), direction):
                report.fail(
                    area,
                    symbol,
                    f"{session} monotonic",
                    f"after {earlier.get('price')} at {_et(earlier.get('as_of_ms'))}",
                    f"{later.get('price')} at {_et(later.get('as_of_ms'))}",
                )
    for (symbol, session), members in sorted(expected.session_bars.items()):
        levels = [_level(b, direction) for b in members]
        extreme = max(levels) if direction == "high" else min(levels)
        first = min(b.received_seconds for b in members)
        setter = min(
            (b for b in members if _level(b, direction) == extreme), key=lambda b: b.arrival
        )
        if setter.received_seconds - first <= grace_seconds:
            continue  # may be part of the session's baseline: no alert is owed
        if kept_since is not None and setter.end_ms < kept_since:
            continue  # its alert fell off the end of the full list
        alerts = groups.get((symbol, session), [])
        last = max(alerts, key=lambda a: int(a.get("as_of_ms") or 0)) if alerts else None
        report.check(
            area,
            symbol,
            f"{session} last alert",
            extreme,
            None if last is None else last.get("price"),
        )


def _level(bar: Bar, direction: str) -> float:
    return bar.high if direction == "high" else bar.low


def _beyond(later: object, earlier: object, direction: str) -> bool:
    if not isinstance(later, int | float) or not isinstance(earlier, int | float):
        return False
    return later > earlier if direction == "high" else later < earlier


def _et(ms: object) -> str:
    if not isinstance(ms, int):
        return repr(ms)
    return datetime.fromtimestamp(ms / 1000, tz=ET).strftime("%H:%M:%S.%f")[:-3]


def format_report(report: Report, *, limit: int = 60) -> str:
    """A readable diff: a summary per area, then one line per mismatch (up to ``limit``)."""
    lines = ["area                 right/compared"]
    for area in sorted(report.compared):
        total = report.compared[area]
        lines.append(f"{area:<20} {total - report.wrong(area)}/{total}")
    if report.mismatches:
        lines.append("")
        lines.append(f"{'area':<18} {'symbol':<12} {'field':<28} {'expected':<26} got")
        lines.extend(
            f"{m.area:<18} {m.symbol:<12} {m.field:<28} {_show(m.expected):<26} {_show(m.got)}"
            for m in report.mismatches[:limit]
        )
        if len(report.mismatches) > limit:
            lines.append(f"... and {len(report.mismatches) - limit} more")
    return "\n".join(lines)


def _show(value: object) -> str:
    return repr(value) if isinstance(value, float) else str(value)
