"""The synthetic market: a seeded stream of Massive events and Finlight articles, plus REST views.

:class:`Market` is what the protocol servers drive. Time only moves when asked:
:meth:`Market.advance` hands out everything in a stretch of simulated time, :meth:`Market.take`
at least a number of events (for rate-paced load). Generation happens one whole simulated
second at a time and is buffered, so however a run is chopped into calls the events are the
same. The REST views
(snapshots, previous close, daily bars, details, float, market status, holidays) are computed
from the same state and only reflect seconds that have been fully handed out.

Example:
    >>> from datetime import date, time
    >>> m = Market(ScenarioConfig(seed=1, symbols=50, trading_day=date(2025, 3, 3),
    ...                           start=time(9, 29)))
    >>> update = m.advance(m.now_ns + 120 * 1_000_000_000)
    >>> {e["ev"] for e in update.events} >= {"T", "Q", "A", "AM"}
    True
"""

from __future__ import annotations

import functools
import math
import random
from bisect import bisect_right
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from types import MappingProxyType
from typing import Final

from mdp_core.calendar import MarketCalendar, Session
from mdp_core.clock import ET, LiveClock, from_ns, to_ns
from mdp_sim._paths import MINUTE_MS, SessionBounds, minute_weights
from mdp_sim._tape import HALT_MS, LULD_HALT, LULD_RESUME, Chunk, DayTape
from mdp_sim.reference import (
    AVERAGE_WINDOW,
    DailyBar,
    Universe,
    build_universe,
    daily_history,
)
from mdp_sim.scenario import ScenarioConfig, ScenarioError, SymbolProfile

__all__ = [
    "HALT_MS",
    "LULD_HALT",
    "LULD_RESUME",
    "Market",
    "MarketUpdate",
    "event_time_ms",
    "not_a_trading_day",
]

_NS_PER_MS = 1_000_000
_SECOND_MS = 1_000
_MARKET_WORDS = {
    Session.REGULAR: "open",
    Session.PRE_MARKET: "extended-hours",
    Session.AFTER_HOURS: "extended-hours",
    Session.CLOSED: "closed",
}
_INDEX_GROUPS = (
    "s_and_p",
    "societe_generale",
    "cgi",
    "msci",
    "ftse_russell",
    "mstar",
    "mstarc",
    "cccy",
    "nasdaq",
    "dow_jones",
)
_HOLIDAY_EXCHANGES = ("NYSE", "NASDAQ")


@dataclass(frozen=True, slots=True)
class MarketUpdate:
    """Everything the market produced over one stretch of simulated time.

    Attributes:
        events: Massive wire events (keys exactly as on the wire), in non-decreasing time order
            (``t`` for T/Q/LULD/NOI, the window end ``e`` for A/AM, see :func:`event_time_ms`).
        articles: Finlight article dicts with camelCase wire keys, in publication order.
    """

    events: list[dict[str, object]]
    articles: list[dict[str, object]]


def event_time_ms(event: Mapping[str, object]) -> int:
    """The instant (Unix ms) an event belongs to: ``t``, or the window end ``e`` for bars."""
    stamp = event.get("t")
    if isinstance(stamp, int):
        return stamp
    end = event.get("e")
    return end if isinstance(end, int) else 0


def _ms_to_iso_utc(ms: int) -> str:
    return from_ns(ms * _NS_PER_MS).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_NOISE_BITS: Final = 12
#: Lognormal noise (sigma 0.3) of a generated minute's volume, drawn by table lookup: weeks of
#: minutes for a symbol cost a few milliseconds, not a Gaussian draw each.
_NOISE_DRAWS: Final = random.Random("minute-noise")
_MINUTE_NOISE: Final = tuple(
    math.exp(_NOISE_DRAWS.gauss(0.0, 0.3)) for _ in range(1 << _NOISE_BITS)
)


def _bar_row(bar: DailyBar) -> dict[str, object]:
    return {
        "o": bar.open,
        "h": bar.high,
        "l": bar.low,
        "c": bar.close,
        "v": bar.volume,
        "vw": bar.vwap,
        "t": bar.start_ms,
        "n": bar.trades,
    }


def not_a_trading_day(day: date, calendar: MarketCalendar) -> str | None:
    """Why the market does not trade on ``day`` (one line for the user), or None if it does.

    The message names the day of the week or the holiday and the nearest trading days, so a
    command line can say what to type instead of showing a traceback.
    """
    if calendar.is_trading_day(day):
        return None
    reason = calendar.holiday_name(day) or f"a {day:%A}"
    before, after = calendar.previous_trading_day(day), calendar.next_trading_day(day)
    return (
        f"{day.isoformat()} is not a trading day ({reason}); the nearest are "
        f"{before.isoformat()} and {after.isoformat()}"
    )


class Market:
    """A deterministic synthetic US equities market, one trading day after another.

    Args:
        config: the scenario (seed, size, day, start time, switches).
        calendar: trading days and sessions; the standard US calendar by default.

    Raises:
        ScenarioError: if ``config.trading_day`` is not a trading day.
    """

    def __init__(self, config: ScenarioConfig, calendar: MarketCalendar | None = None) -> None:
        self.config = config
        self.calendar = calendar if calendar is not None else MarketCalendar()
        day = config.trading_day
        if day is None:
            day = self.calendar.trading_day(LiveClock().now_ns())
        else:
            problem = not_a_trading_day(day, self.calendar)
            if problem is not None:
                raise ScenarioError(problem)
        self._universe: Universe = build_universe(config, day, self.calendar)
        self._index = {p.symbol: k for k, p in enumerate(self._universe.profiles)}
        self._history: dict[int, list[DailyBar]] = {}
        self._realized: dict[int, list[DailyBar]] = {}
        self._now_ns = to_ns(datetime.combine(day, config.start, tzinfo=ET))
        first_ms = -(-self._now_ns // _NS_PER_MS)
        self._gen_ms = -(-first_ms // _SECOND_MS) * _SECOND_MS
        self._tape = DayTape(config, day, self._universe.profiles, self._bounds(day), self._gen_ms)
        self._shown = self._tape
        self._profiles: Mapping[str, SymbolProfile] = MappingProxyType(
            {p.symbol: p for p in self._universe.profiles}
        )
        self._chunks: deque[Chunk] = deque()
        self._pending = 0
        self._next_day_start_ms: int | None = None

    # --- time -----------------------------------------------------------------------------

    @property
    def now_ns(self) -> int:
        """The simulated UTC instant (ns) reached so far."""
        return self._now_ns

    @property
    def trading_day(self) -> date:
        """The trading day being simulated (moves on when time crosses into the next one)."""
        return self._tape.day

    @property
    def profiles(self) -> Mapping[str, SymbolProfile]:
        """Reference data of every symbol as of the start of :attr:`trading_day`."""
        return self._profiles

    def advance(self, until_ns: int) -> MarketUpdate:
        """Return everything that happens in ``(now_ns, until_ns]`` and move the clock there.

        An ``until_ns`` at or before :attr:`now_ns` returns nothing.
        """
        until_ms = until_ns // _NS_PER_MS
        while self._gen_ms < until_ms:
            self._generate_next()
        update = self._emit_until(until_ms)
        self._now_ns = max(self._now_ns, until_ns)
        return update

    def take(self, n: int) -> MarketUpdate:
        """Return at least ``n`` events, ending on a whole instant, and move the clock there.

        Every event sharing the instant of the ``n``-th one is included, so a following
        :meth:`advance` or :meth:`take` never splits an instant.
        """
        if n <= 0:
            return MarketUpdate(events=[], articles=[])
        while self._pending < n:
            self._generate_next()
        need = n
        last_ms = 0
        for chunk in self._chunks:
            remaining = len(chunk.events) - chunk.pos
            if remaining >= need:
                last_ms = event_time_ms(chunk.events[chunk.pos + need - 1])
                break
            need -= remaining
        update = self._emit_until(last_ms)
        self._now_ns = max(self._now_ns, last_ms * _NS_PER_MS)
        return update

    def _bounds(self, day: date) -> SessionBounds:
        schedule = self.calendar.schedule(day)
        if schedule is None:  # pragma: no cover - days are checked before they are simulated
            msg = f"{day.isoformat()} has no sessions"
            raise ScenarioError(msg)
        return SessionBounds(
            day_start_ms=schedule.day_start_ns // _NS_PER_MS,
            open_ms=schedule.regular_open_ns // _NS_PER_MS,
            close_ms=schedule.regular_close_ns // _NS_PER_MS,
            end_ms=schedule.extended_close_ns // _NS_PER_MS,
        )

    def _generate_next(self) -> None:
        """Generate the next second, or jump over closed time (rolling the day when due)."""
        bounds = self._tape.bounds
        if self._gen_ms < bounds.day_start_ms:
            self._gen_ms = bounds.day_start_ms
            return
        if self._gen_ms < bounds.end_ms:
            chunk = self._tape.second(self._gen_ms)
            self._chunks.append(chunk)
            self._pending += len(chunk.events)
            self._gen_ms += _SECOND_MS
            return
        if self._next_day_start_ms is None:
            self._next_day_start_ms = self._bounds(self._next_trading_day()).day_start_ms
        if self._gen_ms < self._next_day_start_ms:
            self._gen_ms = self._next_day_start_ms
            return
        self._roll_day()

    def _next_trading_day(self) -> date:
        return self.calendar.next_trading_day(self._tape.day)

    def _roll_day(self) -> None:
        """Start the next trading day: today's bars become the previous day of every profile."""
        old = self._tape
        new_day = self._next_trading_day()
        profiles: list[SymbolProfile] = []
        for k, profile in enumerate(old.profiles):
            if old.day_n[k] == 0:
                profiles.append(profile)
                continue
            opening = old.official_open[k]
            bar = DailyBar(
                day=old.day,
                open=opening if opening is not None else old.day_o[k],
                high=old.day_h[k],
                low=old.day_l[k],
                close=old.day_c[k],
                volume=old.day_v[k],
                vwap=round(old.day_pv[k] / old.day_v[k], 4),
                trades=old.day_n[k],
            )
            self._realized.setdefault(k, []).append(bar)
            recent = [b.volume for b in self._bars(k)[-AVERAGE_WINDOW:]]
            profiles.append(
                SymbolProfile(
                    symbol=profile.symbol,
                    name=profile.name,
                    primary_exchange=profile.primary_exchange,
                    role=profile.role,
                    prev_open=bar.open,
                    prev_high=bar.high,
                    prev_low=bar.low,
                    prev_close=bar.close,
                    prev_volume=bar.volume,
                    prev_vwap=bar.vwap,
                    avg_volume=round(sum(recent) / len(recent)),
                    shares_outstanding=profile.shares_outstanding,
                    free_float=profile.free_float,
                )
            )
        bounds = self._bounds(new_day)
        self._tape = DayTape(self.config, new_day, profiles, bounds, bounds.day_start_ms)
        self._profiles = MappingProxyType({p.symbol: p for p in profiles})
        self._gen_ms = bounds.day_start_ms
        self._next_day_start_ms = None

    def _emit_until(self, until_ms: int) -> MarketUpdate:
        events: list[dict[str, object]] = []
        articles: list[dict[str, object]] = []
        chunks = self._chunks
        while chunks:
            chunk = chunks[0]
            if chunk.end_ms <= until_ms:
                events.extend(chunk.events[chunk.pos :] if chunk.pos else chunk.events)
                articles.extend(chunk.articles[chunk.article_pos :])
                self._pending -= len(chunk.events) - chunk.pos
                self._commit(chunk)
                chunks.popleft()
                continue
            cut = bisect_right(chunk.events, until_ms, lo=chunk.pos, key=event_time_ms)
            events.extend(chunk.events[chunk.pos : cut])
            self._pending -= cut - chunk.pos
            chunk.pos = cut
            article_cut = bisect_right(chunk.article_ms, until_ms, lo=chunk.article_pos)
            articles.extend(chunk.articles[chunk.article_pos : article_cut])
            chunk.article_pos = article_cut
            break
        return MarketUpdate(events=events, articles=articles)

    def _commit(self, chunk: Chunk) -> None:
        tape = chunk.tape
        if tape is not self._shown:
            self._shown = tape
        if chunk.rows:
            tape.published_day.update(chunk.rows)
        if chunk.minute_rows:
            tape.published_minute.update(chunk.minute_rows)

    # --- REST views -----------------------------------------------------------------------

    def _bars(self, k: int) -> list[DailyBar]:
        base = self._history.get(k)
        if base is None:
            base = self._history[k] = daily_history(self._universe, k)
        return base + self._realized.get(k, [])

    def snapshot(self, symbol: str) -> dict[str, object] | None:
        """The ``TickerSnapshot`` wire row of ``symbol`` (None if unknown).

        ``day`` and ``min`` cover only what has been streamed; ``prevDay`` is the profile's
        previous day (the last daily bar).
        """
        k = self._index.get(symbol)
        if k is None:
            return None
        tape = self._shown
        prev = tape.profiles[k]
        out: dict[str, object] = {
            "ticker": symbol,
            "todaysChange": 0.0,
            "todaysChangePerc": 0.0,
            "updated": 0,
            "day": {"o": 0.0, "h": 0.0, "l": 0.0, "c": 0.0, "v": 0, "vw": 0.0},
            "prevDay": {
                "o": prev.prev_open,
                "h": prev.prev_high,
                "l": prev.prev_low,
                "c": prev.prev_close,
                "v": prev.prev_volume,
                "vw": prev.prev_vwap,
            },
        }
        row = tape.published_day.get(k)
        if row is not None:
            o, h, low, c, v, pv, _n, trade, quote, official = row
            stamp = event_time_ms(trade) * _NS_PER_MS
            out["todaysChange"] = round(c - prev.prev_close, 4)
            out["todaysChangePerc"] = round((c / prev.prev_close - 1.0) * 100.0, 4)
            out["updated"] = stamp
            out["day"] = {
                "o": official if official is not None else o,
                "h": h,
                "l": low,
                "c": c,
                "v": v,
                "vw": round(pv / v, 4),
            }
            out["lastTrade"] = {
                "c": list(trade.get("c", ())),
                "i": trade["i"],
                "p": trade["p"],
                "s": trade["s"],
                "t": stamp,
                "x": trade["x"],
            }
            if quote is not None:
                out["lastQuote"] = {
                    "P": quote["ap"],
                    "S": quote["as"],
                    "p": quote["bp"],
                    "s": quote["bs"],
                    "t": event_time_ms(quote) * _NS_PER_MS,
                }
        minute = tape.published_minute.get(k)
        if minute is not None:
            bar, trades = minute
            out["min"] = {
                "av": bar["av"],
                "t": bar["s"],
                "n": trades,
                "o": bar["o"],
                "h": bar["h"],
                "l": bar["l"],
                "c": bar["c"],
                "v": bar["v"],
                "vw": bar["vw"],
            }
        return out

    def snapshot_all(self, symbols: Sequence[str] | None = None) -> list[dict[str, object]]:
        """Snapshot rows of ``symbols`` (every symbol when None); unknown symbols are left out."""
        wanted: Sequence[str] = list(self._index) if symbols is None else symbols
        return [row for s in wanted if (row := self.snapshot(s)) is not None]

    def previous_close(self, symbol: str) -> dict[str, object] | None:
        """The ``/v2/aggs/ticker/{T}/prev`` results row: the last daily bar before today."""
        k = self._index.get(symbol)
        if k is None:
            return None
        return {"T": symbol, **_bar_row(self._bars(k)[-1])}

    def daily_bars(self, symbol: str, start: date, end: date) -> list[dict[str, object]]:
        """Daily ``Agg`` rows (o,h,l,c,v,vw,t,n) of ``symbol`` for trading days in [start, end].

        Covers the 60 trading days before the first simulated day plus every day completed
        since; the 30 most recent of the initial history average exactly ``avg_volume``.
        """
        k = self._index.get(symbol)
        if k is None:
            return []
        return [_bar_row(bar) for bar in self._bars(k) if start <= bar.day <= end]

    def opening(self, symbol: str) -> tuple[int, float]:
        """Shares and notional the current day counts from before the simulation started.

        A day simulated from 09:25 reports the volume of 04:00-09:25 in its accumulated volume
        (``av``) and day VWAP, as a real feed joined late does; ``(0, 0.0)`` for a day
        simulated from 04:00 (and for unknown symbols).
        """
        k = self._index.get(symbol)
        if k is None:
            return 0, 0.0
        return self._tape.opening_volume[k], self._tape.opening_notional[k]

    def minute_bars(
        self, symbol: str, start: date, end: date, multiplier: int = 1
    ) -> list[dict[str, object]]:
        """``multiplier``-minute ``Agg`` rows (o,h,l,c,v,vw,t,n) of completed days in [start, end].

        Generated, never recorded: each daily bar's volume is spread over its minutes from
        04:00 ET by the shape of a simulated day (:func:`~mdp_sim._paths.minute_weights`) with
        seeded noise, and the minutes sum to the daily volume exactly; a longer bar is the sum
        of its minutes (bars start every ``multiplier`` minutes from 04:00). The same seed gives
        the same history; today's tape, drawn from the same shape, reads about 1x time-of-day
        relative volume for an ordinary symbol. Prices walk from the day's open to its close.
        """
        k = self._index.get(symbol)
        if k is None or multiplier < 1:
            return []
        rows: list[dict[str, object]] = []
        for bar in self._bars(k):
            if start <= bar.day <= end:
                rows.extend(self._minutes_of(symbol, bar, multiplier))
        return rows

    def _minutes_of(self, symbol: str, bar: DailyBar, multiplier: int) -> list[dict[str, object]]:
        bounds, weights = self._day_shape(bar.day)
        rng = random.Random(f"{self.config.seed}:minutes:{symbol}:{bar.day.isoformat()}")
        draw = rng.getrandbits
        noisy = [w * _MINUTE_NOISE[draw(_NOISE_BITS)] for w in weights]
        scale = bar.volume / (sum(noisy) or 1.0)
        volumes = [int(w * scale) for w in noisy]
        volumes[len(volumes) // 2] += bar.volume - sum(volumes)  # exact daily total
        count = len(volumes)
        step = (bar.close - bar.open) / max(1, count - 1)
        rows: list[dict[str, object]] = []
        for first in range(0, count, multiplier):
            volume = sum(volumes[first : first + multiplier])
            if volume <= 0:
                continue
            price = min(bar.high, max(bar.low, round(bar.open + step * first, 4)))
            rows.append(
                {
                    "o": price, "h": price, "l": price, "c": price, "v": volume, "vw": price,
                    "t": bounds.day_start_ms + first * MINUTE_MS, "n": max(1, volume // 150),
                }
            )  # fmt: skip
        return rows

    @functools.lru_cache(maxsize=128)  # noqa: B019 - a handful of days per market, kept for its life
    def _day_shape(self, day: date) -> tuple[SessionBounds, list[float]]:
        """The sessions of ``day`` and the share of its volume in each minute from 04:00."""
        bounds = self._bounds(day)
        return bounds, minute_weights(bounds)

    def grouped_daily(self, day: date) -> list[dict[str, object]]:
        """Every symbol's daily bar of ``day`` (T,o,h,l,c,v,vw,t,n); empty for unknown days."""
        rows: list[dict[str, object]] = []
        for symbol, k in self._index.items():
            for bar in reversed(self._bars(k)):
                if bar.day == day:
                    rows.append({"T": symbol, **_bar_row(bar)})
                    break
                if bar.day < day:
                    break
        return rows

    def ticker_details(self, symbol: str) -> dict[str, object] | None:
        """The ``/v3/reference/tickers/{T}`` results object."""
        k = self._index.get(symbol)
        if k is None:
            return None
        profile = self._shown.profiles[k]
        sector = self._universe.sectors[k]
        list_year = 1990 + (k * 7 + self._universe.seed) % 34
        return {
            "ticker": symbol,
            "name": profile.name,
            "market": "stocks",
            "locale": "us",
            "primary_exchange": profile.primary_exchange,
            "type": "CS",
            "active": True,
            "currency_name": "usd",
            "cik": f"{9_000_000 + k:010d}",
            "market_cap": round(profile.shares_outstanding * profile.prev_close, 2),
            "description": f"{profile.name} is a simulated company generated by mdp-sim.",
            "list_date": f"{list_year}-0{1 + k % 9}-15",
            "round_lot": 100,
            "share_class_shares_outstanding": profile.shares_outstanding,
            "weighted_shares_outstanding": profile.shares_outstanding,
            "sic_code": sector.sic_code,
            "sic_description": sector.sic_description,
            "ticker_root": symbol,
        }

    def free_float(self, symbol: str) -> dict[str, object] | None:
        """A ``/stocks/vX/float`` ``FinancialFloat`` row."""
        k = self._index.get(symbol)
        if k is None:
            return None
        profile = self._shown.profiles[k]
        return {
            "ticker": symbol,
            "free_float": profile.free_float,
            "free_float_percent": round(100.0 * profile.free_float / profile.shares_outstanding, 2),
            "effective_date": self._bars(k)[-1].day.isoformat(),
        }

    def market_status(self, at_ns: int) -> dict[str, object]:
        """The ``/v1/marketstatus/now`` body at ``at_ns`` (simulated time), from the calendar."""
        session = self.calendar.session_at(at_ns)
        word = _MARKET_WORDS[session]
        regular = "open" if session is Session.REGULAR else "closed"
        return {
            "market": word,
            "serverTime": from_ns(at_ns, ET).isoformat(timespec="seconds"),
            "earlyHours": session is Session.PRE_MARKET,
            "afterHours": session is Session.AFTER_HOURS,
            "exchanges": {"nyse": word, "nasdaq": word, "otc": regular},
            "currencies": {"fx": "open", "crypto": "open"},
            "indicesGroups": dict.fromkeys(_INDEX_GROUPS, regular),
        }

    def upcoming_holidays(self, at_ns: int) -> list[dict[str, object]]:
        """The ``/v1/marketstatus/upcoming`` body: closures and early closes from ``at_ns`` on.

        Covers the rest of the year and the next one, for NYSE and NASDAQ; early closes carry
        their open and close instants in UTC.
        """
        today = from_ns(at_ns, ET).date()
        found: list[tuple[date, str, bool]] = []
        for year in (today.year, today.year + 1):
            found.extend((d, name, False) for d, name in self.calendar.holidays(year))
            found.extend((d, name, True) for d, name in self.calendar.early_closes(year))
        rows: list[dict[str, object]] = []
        for day, name, early in sorted(found):
            if day < today:
                continue
            for exchange in _HOLIDAY_EXCHANGES:
                row: dict[str, object] = {
                    "exchange": exchange,
                    "name": name,
                    "date": day.isoformat(),
                    "status": "early-close" if early else "closed",
                }
                if early:
                    row["open"] = _ms_to_iso_utc(
                        to_ns(self.calendar.regular_open(day)) // _NS_PER_MS
                    )
                    row["close"] = _ms_to_iso_utc(
                        to_ns(self.calendar.regular_close(day)) // _NS_PER_MS
                    )
                rows.append(row)
        return rows
