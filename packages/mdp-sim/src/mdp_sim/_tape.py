"""The consolidated tape of one simulated trading day, generated one second at a time.

:class:`DayTape` turns the universe and the role plans into wire events. Each call to
:meth:`DayTape.second` produces everything whose time falls in ``(S, S + 1000]`` for the second
starting at ``S``: scheduled events first (at ``S + 1``: halt resumes, imbalances, band updates),
then trades with their quotes in time order, then the ``A`` bars of the second and, on a minute
boundary, the ``AM`` bars (both stamped ``S + 1000``, the window end). Because a second is always
generated whole and in order, the stream does not depend on how callers chop time.

The trade loop is the hot path of every benchmark: it is written flat, with per-symbol state in
lists indexed by position, random numbers drawn from precomputed tables, and one dict per event.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from itertools import accumulate
from typing import Any

from mdp_core.clock import ET, from_ns
from mdp_sim._newsroom import NewsDesk
from mdp_sim._paths import (
    BAND_GRID_MS,
    MINUTE_MS,
    RolePlan,
    SessionBounds,
    minute_activity,
    minute_profile,
    plan_role,
    second_spikes,
)
from mdp_sim.reference import exchange_id, tape_of
from mdp_sim.scenario import Role, ScenarioConfig, SymbolProfile

__all__ = [
    "HALT_MS",
    "LULD_HALT",
    "LULD_RESUME",
    "Chunk",
    "DayRow",
    "DayTape",
    "MinuteRow",
]

LULD_HALT = 17
"""LULD indicator the simulator puts on a trading pause (price reached a band)."""
LULD_RESUME = 18
"""LULD indicator the simulator puts on the resumption after a pause."""
HALT_MS = 300_000
"""How long a LULD pause lasts (5 simulated minutes)."""

COND_ISO = 14
COND_FORM_T = 12
COND_ODD_LOT = 37
TRF_EXCHANGE = 4

_SECOND_MS = 1_000
_BITS = 12
_TABLE = 1 << _BITS
_MASK = _TABLE - 1
_OFFSETS = range(1, _SECOND_MS)
# Trade venues, weighted by table repetition: Nasdaq 12, NYSE 10, Arca 11, Cboe 7/8, IEX 19,
# MEMX 21, NYSE American 1, and the FINRA TRF (4) for about a third of prints.
_TRADE_VENUES = (
    (12,) * 18
    + (10,) * 12
    + (11,) * 8
    + (7,) * 5
    + (8,) * 8
    + (19,) * 4
    + (21,) * 5
    + (1,) * 2
    + (TRF_EXCHANGE,) * 33
)
_QUOTE_VENUES = (12, 12, 12, 10, 10, 11, 8, 7, 19, 21, 1)
_TRF_IDS = (201, 202, 203)
# Condition arrays are shared immutable tuples (encoded as JSON arrays): no allocation per print.
_EXT_ODD = (COND_FORM_T, COND_ODD_LOT)
_EXT = (COND_FORM_T,)
_ODD = (COND_ODD_LOT,)
_ISO = (COND_ISO,)
_NO_INDICATORS: tuple[int, ...] = ()

DayRow = list[Any]
"""Day state of a symbol as of a second, ``[o, h, l, c, volume, price*volume, trades, last T,
last Q, official open]``; it is the second's bar list, overwritten in place (no extra objects)."""

MinuteRow = tuple[dict[str, object], int]
"""The last complete minute bar of a symbol (the ``AM`` dict) and its trade count."""


@dataclass(slots=True)
class Chunk:
    """One generated second, waiting to be handed out.

    ``pos``/``article_pos`` say how much has been emitted; ``rows``/``minute_rows`` update the
    REST views once the whole second has been emitted, so snapshots never run ahead of the stream.
    """

    end_ms: int
    events: list[dict[str, object]]
    articles: list[dict[str, object]]
    article_ms: list[int]
    tape: DayTape
    rows: dict[int, DayRow]
    minute_rows: list[tuple[int, MinuteRow]]
    pos: int = 0
    article_pos: int = 0


Die = tuple[float, bool, int, int, int, tuple[tuple[int, int], ...], bool, float]
"""One precomputed roll for a trade: size multiplier (lognormal), snap to round lot, venue,
bid venue, ask venue, (bid, ask) sizes in lots of each quote before the print (one to three),
ISO flag, where in the spread the print lands (0 bid .. 1 ask)."""


def _die(rng: random.Random) -> Die:
    quotes = 1 + (rng.random() < 0.6) + (rng.random() < 0.25)
    return (
        math.exp(0.9 * rng.gauss(0.0, 1.0)) * (8.0 if rng.random() < 0.02 else 1.0),
        rng.random() < 0.5,
        rng.choice(_TRADE_VENUES),
        rng.choice(_QUOTE_VENUES),
        rng.choice(_QUOTE_VENUES),
        tuple((1 + rng.randrange(12), 1 + rng.randrange(12)) for _ in range(quotes)),
        rng.random() < 0.08,
        rng.random() * 0.999,
    )


@cache
def _tables() -> tuple[list[float], list[Die]]:
    """The noise and dice tables, drawn once per process from a fixed seed.

    They are constants (the day's own random stream picks the entries), so building them once
    keeps a small market cheap to construct and changes nothing about determinism.
    """
    rng = random.Random("mdp-sim:tables")
    return [rng.gauss(0.0, 1.0) for _ in range(_TABLE)], [_die(rng) for _ in range(_TABLE)]


def _hhmm(ms: int) -> int:
    local = from_ns(ms * 1_000_000, ET)
    return local.hour * 100 + local.minute


def _round(price: float) -> float:
    return round(price, 2) if price >= 1.0 else round(price, 4)


@dataclass(slots=True)
class _Schedule:
    """Instants of the day at which something other than trading happens."""

    articles: dict[int, list[tuple[int, str]]] = field(default_factory=dict)
    imbalances: dict[int, tuple[int, bool]] = field(default_factory=dict)


class DayTape:
    """Generator and running state of one trading day.

    Args:
        config: the scenario knobs (quotes/aggregates switches, activity, news rate).
        day: the trading day.
        profiles: the universe, in universe order (positions are the symbol indices).
        bounds: the day's session boundaries.
        first_ms: the first simulated instant of the day (the configured start, or 04:00).
    """

    def __init__(
        self,
        config: ScenarioConfig,
        day: date,
        profiles: Sequence[SymbolProfile],
        bounds: SessionBounds,
        first_ms: int,
    ) -> None:
        self.config = config
        self.day = day
        self.profiles = tuple(profiles)
        self.bounds = bounds
        seed = f"{config.seed}:{day.isoformat()}"
        rng = random.Random(f"{seed}:tape")
        self._rng = rng
        self._news_rng = random.Random(f"{seed}:news")
        self.news = NewsDesk(day=day, rng=random.Random(f"{seed}:articles"))
        self._normals, self._dice = _tables()
        count = len(self.profiles)
        self._index = range(count)
        self.symbols = [p.symbol for p in self.profiles]
        self._tapes = [tape_of(p.primary_exchange) for p in self.profiles]
        self._setup_paths(rng)
        self.plans: dict[int, RolePlan] = {
            k: plan_role(p, random.Random(f"{seed}:role:{k}"), bounds, first_ms)
            for k, p in enumerate(self.profiles)
            if p.role is not Role.NORMAL
        }
        for k, plan in self.plans.items():
            self._target[k] = plan.target(bounds.day_start_ms)
            self._decay[k] = 0.97
            self._sigma[k] = 0.004
        self._seq = [0] * count
        self._trade_id = [0] * count
        # Running day totals (generation side; REST views use the committed rows below).
        self.day_o = [0.0] * count
        self.day_h = [0.0] * count
        self.day_l = [0.0] * count
        self.day_c = [0.0] * count
        self.day_v = [0] * count
        self.day_pv = [0.0] * count
        self.day_n = [0] * count
        self.official_open: list[float | None] = [None] * count
        self._minute_bars: dict[int, list[float]] = {}
        self._band_hi = [0.0] * count
        self._band_lo = [0.0] * count
        self._band_active: set[int] = set()
        self.halted: dict[int, int] = {}
        # Committed views (as of the last fully emitted second).
        self.published_day: dict[int, DayRow] = {}
        self.published_minute: dict[int, MinuteRow] = {}
        self._profile = minute_profile(bounds)
        self._spikes = second_spikes(bounds)
        self._minute = -1
        self._cum: list[float] = []
        self._total = 0.0
        self._schedule = self._plan_schedule(first_ms)
        self._seed_opening(first_ms)

    # --- setup --------------------------------------------------------------------------

    def _setup_paths(self, rng: random.Random) -> None:
        """Per-symbol trading parameters: trade rate, sizes, spread, volatility, start level."""
        self._base: list[float] = []
        self._median_size: list[float] = []
        self._spread: list[int] = []
        self._sigma: list[float] = []
        self._decay: list[float] = []
        self._target: list[float] = []
        self._x: list[float] = []
        for p in self.profiles:
            price = p.prev_close
            median = min(3000.0, max(20.0, 1500.0 / price**0.7))
            self._median_size.append(median)
            # Some names are busier today than usual, some quieter (relative volume varies).
            today = math.exp(rng.gauss(0.0, 0.3))
            trades = max(50.0, today * p.avg_volume / (1.6 * median))
            if p.role is not Role.NORMAL:
                # Scripted names must print often enough for their story to show (a squeeze
                # needs prints during its 15 s to reach the band before it is re-centred).
                trades = max(trades, 4_000.0)
            self._base.append(trades)
            low, high = (1, 2) if price < 5 else (1, 4) if price < 50 else (2, 10)
            self._spread.append(rng.randint(low, high))
            daily_vol = 0.015 + 0.03 / math.sqrt(price)
            self._sigma.append(daily_vol / math.sqrt(trades))
            self._decay.append(1.0)
            self._target.append(price * math.exp(rng.gauss(0.0, 0.01)))
            self._x.append(0.0)

    def _seed_opening(self, first_ms: int) -> None:
        """Start the day's totals with what each symbol traded before ``first_ms``.

        A real feed joined at 09:25 reports the day's accumulated volume (``av``) since 04:00;
        so does a day simulated from 09:25: each symbol's expected volume over the skipped
        part of the day (its trade rate times the day's activity curve times its median size
        times 1.6, the mean of the size distribution) at its starting price, without prints.
        That keeps time-of-day relative volume about 1x for an ordinary symbol whenever the
        simulation starts.
        """
        self.opening_volume = [0] * len(self.profiles)
        self.opening_notional = [0.0] * len(self.profiles)
        skipped_ms = min(first_ms, self.bounds.end_ms) - self.bounds.day_start_ms
        if skipped_ms <= 0:
            return
        activity = minute_activity(self.bounds)
        whole, part = divmod(skipped_ms, MINUTE_MS)
        share = sum(activity[:whole])
        if whole < len(activity):
            share += activity[whole] * part / MINUTE_MS
        share *= self.config.activity
        for k in self._index:
            volume = int(self._base[k] * share * 1.6 * self._median_size[k])
            self.opening_volume[k] = volume
            self.opening_notional[k] = volume * self._target[k]
            self.day_v[k] = volume
            self.day_pv[k] = self.opening_notional[k]

    def _plan_schedule(self, first_ms: int) -> _Schedule:
        schedule = _Schedule()
        bounds = self.bounds
        start = max(first_ms, bounds.day_start_ms)
        start -= start % _SECOND_MS
        gap_news = start + 30 * _SECOND_MS
        for k, plan in self.plans.items():
            role = plan.role
            if role is Role.NEWS_RUNNER:
                at, tone = plan.event_ms, "positive"
            elif role in (Role.GAPPER_UP, Role.FADER):
                at, tone = gap_news, "positive"
            elif role is Role.GAPPER_DOWN:
                at, tone = gap_news, "negative"
            else:
                continue
            gap_news += 7 * _SECOND_MS
            if at < bounds.end_ms:
                schedule.articles.setdefault(at, []).append((k, tone))
        for at, opening in (
            (bounds.open_ms - 2 * MINUTE_MS, True),
            (bounds.open_ms - MINUTE_MS, True),
            (bounds.close_ms - 10 * MINUTE_MS, False),
            (bounds.close_ms - 5 * MINUTE_MS, False),
        ):
            schedule.imbalances[at] = (
                _hhmm(bounds.open_ms if opening else bounds.close_ms),
                opening,
            )
        return schedule

    # --- one second ---------------------------------------------------------------------

    def second(self, start_ms: int) -> Chunk:
        """Generate everything in ``(start_ms, start_ms + 1000]``; seconds must come in order."""
        bounds = self.bounds
        events: list[dict[str, object]] = []
        minute = (start_ms - bounds.day_start_ms) // MINUTE_MS
        if minute != self._minute:
            self._reweigh(minute, start_ms)
        if self.halted:
            self._resume_due(start_ms, events)
        imbalance = self._schedule.imbalances.get(start_ms)
        if imbalance is not None:
            self._imbalances(start_ms, imbalance, events)
        regular = bounds.open_ms <= start_ms < bounds.close_ms
        if regular and (start_ms - bounds.open_ms) % BAND_GRID_MS == 0:
            self._publish_bands(start_ms, events, everyone=start_ms == bounds.open_ms)
        target = self._target
        for k, plan in self.plans.items():
            target[k] = plan.target(start_ms)
        rate = self._total * self._profile[minute] / 60.0 * self.config.activity
        rate *= self._spikes.get(start_ms, 1.0)
        sec: dict[int, list[Any]] = {}
        trades = self._poisson(rate)
        if trades:
            self._trade(start_ms, trades, regular, events, sec)
        rows, minute_rows = self._close_second(start_ms, sec, events)
        articles, article_ms = self._articles(start_ms)
        return Chunk(
            end_ms=start_ms + _SECOND_MS,
            events=events,
            articles=articles,
            article_ms=article_ms,
            tape=self,
            rows=rows,
            minute_rows=minute_rows,
        )

    def _reweigh(self, minute: int, start_ms: int) -> None:
        """Per-minute symbol weights: base trade rate times the role's intensity now."""
        weights = list(self._base)
        for k, plan in self.plans.items():
            weights[k] = self._base[k] * plan.intensity(start_ms)
        self._cum = list(accumulate(weights))
        self._total = self._cum[-1] if self._cum else 0.0
        self._minute = minute

    def _poisson(self, rate: float) -> int:
        if rate <= 0.0:
            return 0
        rnd = self._rng.random
        if rate < 30.0:
            limit = math.exp(-rate)
            count = 0
            product = rnd()
            while product > limit:
                count += 1
                product *= rnd()
            return count
        return max(0, int(rate + math.sqrt(rate) * self._rng.gauss(0.0, 1.0) + 0.5))

    def _trade(  # noqa: C901, PLR0912, PLR0915 - the hot loop is kept flat on purpose (speed)
        self,
        start_ms: int,
        count: int,
        regular: bool,
        events: list[dict[str, object]],
        sec: dict[int, list[Any]],
    ) -> None:
        """Generate ``count`` trades (and their quotes) in the second starting at ``start_ms``.

        Prices are handled in integer ticks and divided once, which gives the shortest decimal
        repr without ``round``; each trade draws one 24-bit random number whose halves index
        the noise table and the dice table (size, venue, quote sizes, conditions).
        """
        rng = self._rng
        bits = rng.getrandbits
        offsets = sorted(rng.choices(_OFFSETS, k=count))
        who = rng.choices(self._index, cum_weights=self._cum, k=count)
        normals, dice = self._normals, self._dice
        x, decay, sigma, target = self._x, self._decay, self._sigma, self._target
        symbols, tapes, seqs, tids = self.symbols, self._tapes, self._seq, self._trade_id
        medians, spreads = self._median_size, self._spread
        band_hi, band_lo, halted = self._band_hi, self._band_lo, self.halted
        with_quotes = self.config.quotes
        ext = not regular
        exp = math.exp
        append = events.append
        for offset, k in zip(offsets, who, strict=True):
            if halted and k in halted:
                continue
            t = start_ms + offset
            draw = bits(24)
            xk = x[k] * decay[k] + sigma[k] * normals[draw & _MASK]
            x[k] = xk
            raw = target[k] * exp(xk)
            scale = 100 if raw >= 1.0 else 10_000
            ticks = int(raw * scale + 0.5) or 1
            p = ticks / scale
            if regular:
                hi = band_hi[k]
                if hi and (p >= hi or p <= band_lo[k]):
                    self._halt(k, t, start_ms, events)
                    continue
            size_mult, snap, venue, bx, ax, sizes, cond_roll, side = dice[draw >> _BITS]
            size = int(medians[k] * size_mult) + 1
            if snap and size > 100:
                size -= size % 100
            if ext:
                cond: tuple[int, ...] | None = _EXT_ODD if size < 100 else _EXT
            elif size < 100:
                cond = _ODD
            elif cond_roll:
                cond = _ISO
            else:
                cond = None
            sym = symbols[k]
            z = tapes[k]
            seq = seqs[k]
            quote: dict[str, object] | None = None
            if with_quotes:
                spread = spreads[k]
                bid_ticks = ticks - int(side * (spread + 1))
                if bid_ticks < 1:
                    bid_ticks = ticks
                bid = bid_ticks / scale
                ask = (bid_ticks + spread) / scale
                for bid_size, ask_size in sizes:
                    seq += 1
                    quote = {
                        "ev": "Q",
                        "sym": sym,
                        "bx": bx,
                        "bp": bid,
                        "bs": bid_size,
                        "ax": ax,
                        "ap": ask,
                        "as": ask_size,
                        "t": t,
                        "q": seq,
                        "z": z,
                    }
                    append(quote)
            seq += 1
            seqs[k] = seq
            tid = tids[k] + 1
            tids[k] = tid
            trade: dict[str, object] = {
                "ev": "T",
                "sym": sym,
                "x": venue,
                "i": str(tid),
                "z": z,
                "p": p,
                "s": size,
                "t": t,
                "q": seq,
            }
            if cond is not None:
                trade["c"] = cond
            if venue == TRF_EXCHANGE:
                trade["trfi"] = _TRF_IDS[tid % 3]
                trade["trft"] = t - 1
            append(trade)
            bar = sec.get(k)
            if bar is None:
                sec[k] = [p, p, p, p, size, p * size, 1, trade, quote]
            else:
                if p > bar[1]:
                    bar[1] = p
                elif p < bar[2]:
                    bar[2] = p
                bar[3] = p
                bar[4] += size
                bar[5] += p * size
                bar[6] += 1
                bar[7] = trade
                if quote is not None:
                    bar[8] = quote

    # --- halts and bands ------------------------------------------------------------------

    def _band_pct(self, price: float, start_ms: int) -> float:
        if price > 3.0:
            pct = 0.10
        elif price >= 0.75:
            pct = 0.20
        else:
            pct = min(0.75, 0.15 / max(price, 0.0001))
        bounds = self.bounds
        if (
            start_ms < bounds.open_ms + 15 * MINUTE_MS
            or start_ms >= bounds.close_ms - 25 * MINUTE_MS
        ):
            pct *= 2.0
        return pct

    def _luld(self, k: int, t: int, indicators: tuple[int, ...]) -> dict[str, object]:
        self._seq[k] += 1
        return {
            "ev": "LULD",
            "T": self.symbols[k],
            "h": self._band_hi[k],
            "l": self._band_lo[k],
            "i": indicators,
            "z": self._tapes[k],
            "t": t,
            "q": self._seq[k],
        }

    def _set_bands(self, k: int, reference: float, start_ms: int) -> None:
        pct = self._band_pct(reference, start_ms)
        tick = 0.01 if reference >= 1.0 else 0.0001
        self._band_hi[k] = _round(reference * (1.0 + pct))
        self._band_lo[k] = max(_round(reference * (1.0 - pct)), tick)

    def _publish_bands(
        self, start_ms: int, events: list[dict[str, object]], *, everyone: bool
    ) -> None:
        """Band updates for every symbol at the open, then for those that traded since."""
        members: Sequence[int] = self._index if everyone else sorted(self._band_active)
        self._band_active = set()
        t = start_ms + 1
        for k in members:
            if k in self.halted:
                continue
            reference = self.day_c[k] or self._target[k] * math.exp(self._x[k])
            self._set_bands(k, reference, start_ms)
            events.append(self._luld(k, t, _NO_INDICATORS))

    def _halt(self, k: int, t: int, start_ms: int, events: list[dict[str, object]]) -> None:
        """A print reached a band: pause the symbol for :data:`HALT_MS`."""
        self.halted[k] = start_ms + HALT_MS
        events.append(self._luld(k, t, (LULD_HALT,)))

    def _resume_due(self, start_ms: int, events: list[dict[str, object]]) -> None:
        t = start_ms + 1
        for k in sorted(self.halted):
            if self.halted[k] <= start_ms:
                del self.halted[k]
                reference = self._target[k] * math.exp(self._x[k])
                self._set_bands(k, reference, start_ms)
                events.append(self._luld(k, t, (LULD_RESUME,)))

    def _imbalances(
        self, start_ms: int, imbalance: tuple[int, bool], events: list[dict[str, object]]
    ) -> None:
        """Net order imbalance messages ahead of the opening and closing crosses."""
        auction_time, opening = imbalance
        rnd = self._rng.random
        t = start_ms + 1
        for k, profile in enumerate(self.profiles):
            if k in self.halted:
                continue
            kind = ("O" if profile.primary_exchange == "XNAS" else "M") if opening else "C"
            reference = self.day_c[k] or self._target[k]
            self._seq[k] += 1
            lots = max(1, int(profile.avg_volume * 0.004 * rnd()) // 100)
            events.append(
                {
                    "ev": "NOI",
                    "T": self.symbols[k],
                    "t": t,
                    "at": auction_time,
                    "a": kind,
                    "i": self._seq[k],
                    "x": exchange_id(profile.primary_exchange),
                    "o": lots * 100,
                    "p": max(100, int(profile.avg_volume * 0.01 * rnd()) // 100 * 100),
                    "b": _round(reference * (1.0 + 0.01 * (rnd() - 0.5))),
                }
            )

    # --- bars -----------------------------------------------------------------------------

    def _close_second(  # noqa: PLR0915 - flat on purpose: runs for every symbol-second
        self, start_ms: int, sec: dict[int, list[Any]], events: list[dict[str, object]]
    ) -> tuple[dict[int, DayRow], list[tuple[int, MinuteRow]]]:
        """Roll the second's trades into A bars, the minute bars and the day totals."""
        end = start_ms + _SECOND_MS
        emit = self.config.second_aggregates
        regular = start_ms >= self.bounds.open_ms
        symbols = self.symbols
        day_o, day_h, day_l, day_c = self.day_o, self.day_h, self.day_l, self.day_c
        day_v, day_pv, day_n, official = self.day_v, self.day_pv, self.day_n, self.official_open
        minute_bars = self._minute_bars
        append = events.append
        for k, bar in sec.items():
            o, h, lo, c, v, pv, n, _, _ = bar
            dv = day_v[k] + v
            dpv = day_pv[k] + pv
            day_v[k] = dv
            day_pv[k] = dpv
            dn = day_n[k] + n
            day_n[k] = dn
            if dn == n:
                day_o[k] = o
                dh = day_h[k] = h
                dl = day_l[k] = lo
            else:
                dh = day_h[k]
                if h > dh:
                    dh = day_h[k] = h
                dl = day_l[k]
                if lo < dl:
                    dl = day_l[k] = lo
            day_c[k] = c
            opening = official[k]
            if opening is None and regular:
                opening = official[k] = o
            if emit:
                agg: dict[str, object] = {
                    "ev": "A",
                    "sym": symbols[k],
                    "v": v,
                    "av": dv,
                    "vw": round(pv / v, 4),
                    "o": o,
                    "h": h,
                    "l": lo,
                    "c": c,
                    "a": round(dpv / dv, 4),
                    "z": v // n,
                    "s": start_ms,
                    "e": end,
                }
                if opening is not None:
                    agg["op"] = opening
                append(agg)
            acc = minute_bars.get(k)
            if acc is None:
                minute_bars[k] = [o, h, lo, c, v, pv, n]
            else:
                acc[1] = max(acc[1], h)
                acc[2] = min(acc[2], lo)
                acc[3] = c
                acc[4] += v
                acc[5] += pv
                acc[6] += n
            bar[0] = day_o[k]
            bar[1] = dh
            bar[2] = dl
            bar[4] = dv
            bar[5] = dpv
            bar[6] = dn
            bar.append(opening)
        self._band_active.update(sec)
        if end % MINUTE_MS:
            return sec, []
        return sec, self._close_minute(end, events)

    def _close_minute(
        self, end: int, events: list[dict[str, object]]
    ) -> list[tuple[int, MinuteRow]]:
        emit = self.config.minute_aggregates
        out: list[tuple[int, MinuteRow]] = []
        for k, acc in self._minute_bars.items():
            v, n = int(acc[4]), int(acc[6])
            dv = self.day_v[k]
            bar: dict[str, object] = {
                "ev": "AM",
                "sym": self.symbols[k],
                "v": v,
                "av": dv,
                "vw": round(acc[5] / v, 4),
                "o": acc[0],
                "h": acc[1],
                "l": acc[2],
                "c": acc[3],
                "a": round(self.day_pv[k] / dv, 4),
                "z": v // n,
                "s": end - MINUTE_MS,
                "e": end,
            }
            opening = self.official_open[k]
            if opening is not None:
                bar["op"] = opening
            if emit:
                events.append(bar)
            out.append((k, (bar, n)))
        self._minute_bars = {}
        return out

    # --- news -----------------------------------------------------------------------------

    def _articles(self, start_ms: int) -> tuple[list[dict[str, object]], list[int]]:
        """Scheduled role articles at ``start_ms + 1`` and background news at a Poisson rate."""
        articles: list[dict[str, object]] = []
        stamps: list[int] = []
        due = self._schedule.articles.get(start_ms)
        if due:
            for k, tone in due:
                articles.append(self.news.write(start_ms + 1, [(k, self.profiles[k])], tone))
                stamps.append(start_ms + 1)
        rate = self.config.news_per_hour / 3600.0
        if rate and self._news_rng.random() < rate:
            rng = self._news_rng
            k = rng.randrange(len(self.profiles))
            subjects = [(k, self.profiles[k])]
            if rng.random() < 0.2 and len(self.profiles) > 1:
                other = rng.randrange(len(self.profiles))
                if other != k:
                    subjects.append((other, self.profiles[other]))
            tone = rng.choice(("positive", "negative", "neutral", "neutral"))
            stamp = start_ms + 1 + rng.randrange(_SECOND_MS - 1)
            articles.append(self.news.write(stamp, subjects, tone))
            stamps.append(stamp)
        return articles, stamps
