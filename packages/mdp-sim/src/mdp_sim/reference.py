"""Reference data of the simulated universe: tickers, companies, floats and daily history.

Everything is derived from the scenario seed with one :class:`random.Random` per symbol (seeded
from the seed and the symbol's position), so a symbol's profile does not depend on how the rest of
the universe was drawn, and the daily history of one symbol can be built lazily when a REST call
asks for it. Tickers and names are made up from letters and syllables; nothing is looked up.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Final

from mdp_core.calendar import MarketCalendar
from mdp_core.clock import ET, to_ns
from mdp_sim.scenario import Role, ScenarioConfig, SymbolProfile

__all__ = [
    "AVERAGE_WINDOW",
    "HISTORY_DAYS",
    "DailyBar",
    "Sector",
    "Universe",
    "build_universe",
    "daily_history",
    "exchange_id",
    "tape_of",
    "tick_of",
]

HISTORY_DAYS = 60
"""Trading days of daily bars served before the simulated day."""

AVERAGE_WINDOW = 30
"""Days ``SymbolProfile.avg_volume`` averages over (the last bars of the history)."""

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_TICKER_LENGTHS = (1, 2, 3, 4, 5)
_TICKER_LENGTH_WEIGHTS = (1, 4, 35, 48, 12)

_SYLLABLES = (
    "ar", "bel", "cor", "dyn", "ex", "flo", "gen", "hal", "ion", "jet", "ky", "lum", "mer",
    "nov", "opt", "pra", "quan", "ros", "syn", "ter", "ul", "ver", "wex", "xen", "yar", "zen",
    "tal", "vin", "mo", "ka", "li", "son", "tri", "cel", "ra", "nu",
)  # fmt: skip
_ENDINGS = ("a", "on", "ix", "ia", "era", "ex", "us", "ent", "ica", "ity", "o", "is")
_SUFFIXES = ("Inc.", "Corp.", "Holdings Inc.", "Ltd.", "Group Inc.", "Co.", "plc")


@dataclass(frozen=True, slots=True)
class Sector:
    """An industry a simulated company belongs to, with its SIC classification."""

    word: str
    sic_code: str
    sic_description: str


_SECTORS = (
    Sector("Therapeutics", "2834", "PHARMACEUTICAL PREPARATIONS"),
    Sector("Biosciences", "2836", "BIOLOGICAL PRODUCTS"),
    Sector("Energy", "1311", "CRUDE PETROLEUM & NATURAL GAS"),
    Sector("Technologies", "7372", "SERVICES-PREPACKAGED SOFTWARE"),
    Sector("Semiconductor", "3674", "SEMICONDUCTORS & RELATED DEVICES"),
    Sector("Mining", "1040", "GOLD AND SILVER ORES"),
    Sector("Financial", "6199", "FINANCE SERVICES"),
    Sector("Networks", "4899", "COMMUNICATIONS SERVICES, NEC"),
    Sector("Robotics", "3569", "GENERAL INDUSTRIAL MACHINERY"),
    Sector("Motors", "3711", "MOTOR VEHICLES & PASSENGER CAR BODIES"),
    Sector("Foods", "2000", "FOOD AND KINDRED PRODUCTS"),
    Sector("Retail", "5990", "RETAIL-RETAIL STORES, NEC"),
    Sector("Aerospace", "3720", "AIRCRAFT & PARTS"),
    Sector("Logistics", "4731", "ARRANGEMENT OF TRANSPORTATION"),
    Sector("Materials", "2800", "CHEMICALS & ALLIED PRODUCTS"),
)

# Primary listing venues (MIC), how often they list, their tape and Massive exchange id.
_EXCHANGES = ("XNAS", "XNYS", "ARCX", "XASE")
_EXCHANGE_WEIGHTS = (60, 28, 6, 6)
_TAPES = {"XNAS": 3, "XNYS": 1, "ARCX": 2, "XASE": 2}
_EXCHANGE_IDS = {"XNAS": 12, "XNYS": 10, "ARCX": 11, "XASE": 1}

_ROLE_ORDER = (
    Role.GAPPER_UP,
    Role.NEWS_RUNNER,
    Role.HALTER,
    Role.HOD_RUNNER,
    Role.FADER,
    Role.GAPPER_DOWN,
)
_FULL_CAST_MIN_SYMBOLS = 20
_MAX_PER_ROLE = 20


def tape_of(primary_exchange: str) -> int:
    """The SIP tape (1 NYSE, 2 NYSE American/Arca/regional, 3 Nasdaq) of a listing venue."""
    return _TAPES.get(primary_exchange, 2)


def exchange_id(primary_exchange: str) -> int:
    """Massive's numeric exchange id of a listing venue (used in ``NOI`` events)."""
    return _EXCHANGE_IDS.get(primary_exchange, 12)


def tick_of(price: float) -> float:
    """The minimum price increment: $0.01, or $0.0001 below one dollar."""
    return 0.01 if price >= 1.0 else 0.0001


def _round_price(price: float) -> float:
    return round(price, 2) if price >= 1.0 else round(price, 4)


@dataclass(frozen=True, slots=True)
class DailyBar:
    """One trading day's bar as the aggregates endpoints serve it."""

    day: date
    open: float
    high: float
    low: float
    close: float
    volume: int
    vwap: float
    trades: int

    @property
    def start_ms(self) -> int:
        """Midnight ET of the day in Unix ms: the ``t`` Massive gives daily bars."""
        return to_ns(datetime.combine(self.day, time(0), tzinfo=ET)) // 1_000_000


@dataclass(frozen=True, slots=True)
class Universe:
    """The simulated symbols of one scenario, in a stable order.

    Attributes:
        profiles: one profile per symbol, in universe order (the order of derived seeds).
        sectors: the sector of each symbol, same order.
        history_days: the trading days before the simulated day that daily bars cover,
            oldest first; the last one is the previous trading day.
        seed: the scenario seed the universe was built from.
    """

    profiles: tuple[SymbolProfile, ...]
    sectors: tuple[Sector, ...]
    history_days: tuple[date, ...]
    seed: int


def _role_cast(symbols: int, rng: random.Random) -> dict[int, Role]:
    """Which universe positions play which role: several of each in a big enough universe."""
    if symbols >= _FULL_CAST_MIN_SYMBOLS:
        per_role = max(1, min(_MAX_PER_ROLE, symbols // 100))
        roles = [role for role in _ROLE_ORDER for _ in range(per_role)]
    else:
        roles = list(_ROLE_ORDER[: symbols // 2])
    positions = rng.sample(range(symbols), len(roles))
    return dict(zip(positions, roles, strict=True))


def _ticker(rng: random.Random, taken: set[str]) -> str:
    while True:
        length = rng.choices(_TICKER_LENGTHS, _TICKER_LENGTH_WEIGHTS)[0]
        ticker = "".join(rng.choice(_LETTERS) for _ in range(length))
        if ticker not in taken:
            taken.add(ticker)
            return ticker


def _company_name(rng: random.Random, sector: Sector) -> str:
    stem = rng.choice(_SYLLABLES) + rng.choice(_SYLLABLES) + rng.choice(_ENDINGS)
    return f"{stem.capitalize()} {sector.word} {rng.choice(_SUFFIXES)}"


def _price(rng: random.Random, role: Role) -> float:
    if role is Role.NORMAL:
        # Log-uniform from ~$0.80 to ~$500: many cheap names, a few expensive ones.
        return math.exp(rng.uniform(math.log(0.8), math.log(500.0)))
    if role is Role.HALTER:
        return rng.uniform(4.0, 20.0)
    return math.exp(rng.uniform(math.log(1.5), math.log(30.0)))


#: Market capitalisation ranges by price (dollars): sub-$5 names are micro and small caps,
#: mega caps trade at tens of dollars and more. (upper price bound, lowest cap, highest cap)
_CAP_BY_PRICE: Final = (
    (1.0, 5e6, 3e8),
    (5.0, 1e7, 1.5e9),
    (20.0, 3e7, 1e10),
    (100.0, 1e8, 2e11),
    (math.inf, 5e8, 3e12),
)
#: The most shares any listed company has (the largest float ~15-16 billion shares).
_MAX_SHARES: Final = 16e9
#: Average daily volume as a share of the float: at most (hot low floats turn ~1/3 a day)
#: and at least (even the quietest large cap trades ~0.2 % of its float a day).
_MAX_TURNOVER: Final = 0.3
_MIN_TURNOVER: Final = 0.002


def _shares(rng: random.Random, role: Role, price: float) -> tuple[int, int]:
    """Shares outstanding and free float; role names and some normal ones are low-float.

    Normal names draw a market cap log-uniformly from the range usual for their price, so a
    $1-3 stock has tens to hundreds of millions of shares, never hundreds of billions.
    """
    low_float = role is not Role.NORMAL or rng.random() < 0.1
    if low_float:
        outstanding = int(rng.uniform(3e6, 40e6))
        fraction = rng.uniform(0.15, 0.8)
    else:
        low, high = next((lo, hi) for top, lo, hi in _CAP_BY_PRICE if price < top)
        cap = math.exp(rng.uniform(math.log(low), math.log(high)))
        outstanding = int(min(_MAX_SHARES, max(2e6, cap / price)))
        fraction = rng.uniform(0.55, 0.98)
    return outstanding, max(100_000, int(outstanding * fraction))


def _avg_volume(rng: random.Random, price: float, free_float: int) -> int:
    log_median = 6.1 - 0.35 * math.log10(price)
    volume = 10 ** rng.gauss(log_median, 0.45)
    # A float turns over a fraction of itself on an average day, however busy the name.
    volume = max(volume, 20_000.0, free_float * _MIN_TURNOVER)
    return int(min(volume, 80e6, free_float * _MAX_TURNOVER))


def _profile(index: int, seed: int, role: Role, taken: set[str]) -> tuple[SymbolProfile, Sector]:
    rng = random.Random(f"{seed}:profile:{index}")
    symbol = _ticker(rng, taken)
    sector = rng.choice(_SECTORS)
    name = _company_name(rng, sector)
    primary = rng.choices(_EXCHANGES, _EXCHANGE_WEIGHTS)[0]
    close = _round_price(_price(rng, role))
    outstanding, free_float = _shares(rng, role, close)
    avg_volume = _avg_volume(rng, close, free_float)
    prev_open = _round_price(close * math.exp(rng.gauss(0.0, 0.02)))
    high = _round_price(max(prev_open, close) * (1.0 + abs(rng.gauss(0.0, 0.012))))
    low = _round_price(min(prev_open, close) * (1.0 - abs(rng.gauss(0.0, 0.012))))
    vwap = round((high + low + 2.0 * close) / 4.0, 4)
    prev_volume = int(avg_volume * min(3.0, max(0.3, math.exp(rng.gauss(0.0, 0.3)))))
    profile = SymbolProfile(
        symbol=symbol,
        name=name,
        primary_exchange=primary,
        role=role,
        prev_open=prev_open,
        prev_high=high,
        prev_low=low,
        prev_close=close,
        prev_volume=prev_volume,
        prev_vwap=vwap,
        avg_volume=avg_volume,
        shares_outstanding=outstanding,
        free_float=free_float,
    )
    return profile, sector


def _history_days(calendar: MarketCalendar, day: date) -> tuple[date, ...]:
    days = [calendar.previous_trading_day(day)]
    while len(days) < HISTORY_DAYS:
        days.append(calendar.previous_trading_day(days[-1]))
    return tuple(reversed(days))


def build_universe(config: ScenarioConfig, day: date, calendar: MarketCalendar) -> Universe:
    """Draw the scenario's symbols, roles and reference data (deterministic in the seed).

    Args:
        config: the scenario; only ``seed`` and ``symbols`` matter here.
        day: the simulated trading day; history ends on the trading day before it.
        calendar: the calendar that says which earlier days traded.
    """
    cast = _role_cast(config.symbols, random.Random(f"{config.seed}:roles"))
    taken: set[str] = set()
    profiles: list[SymbolProfile] = []
    sectors: list[Sector] = []
    for index in range(config.symbols):
        profile, sector = _profile(index, config.seed, cast.get(index, Role.NORMAL), taken)
        profiles.append(profile)
        sectors.append(sector)
    return Universe(
        profiles=tuple(profiles),
        sectors=tuple(sectors),
        history_days=_history_days(calendar, day),
        seed=config.seed,
    )


def _scaled_volumes(rng: random.Random, profile: SymbolProfile) -> list[int]:
    """Daily volumes whose last bar is the previous day and whose 30-day mean is avg_volume."""
    volumes = [
        max(1_000, int(profile.avg_volume * math.exp(rng.gauss(0.0, 0.35))))
        for _ in range(HISTORY_DAYS)
    ]
    volumes[-1] = profile.prev_volume
    window = AVERAGE_WINDOW - 1
    target = AVERAGE_WINDOW * profile.avg_volume - profile.prev_volume
    raw = volumes[-AVERAGE_WINDOW:-1]
    total = sum(raw)
    scaled = [value * target // total for value in raw]
    for i in range(target - sum(scaled)):
        scaled[i % window] += 1
    volumes[-AVERAGE_WINDOW:-1] = scaled
    return volumes


def daily_history(universe: Universe, index: int) -> list[DailyBar]:
    """The daily bars of the symbol at ``index`` over ``universe.history_days``.

    The last bar is exactly the profile's previous day and the mean volume of the last
    :data:`AVERAGE_WINDOW` bars is exactly ``avg_volume``. Prices walk backwards from the
    previous day's open so the series joins the simulated day without a seam.
    """
    profile = universe.profiles[index]
    rng = random.Random(f"{universe.seed}:history:{index}")
    volumes = _scaled_volumes(rng, profile)
    days = universe.history_days
    bars = [
        DailyBar(
            day=days[-1],
            open=profile.prev_open,
            high=profile.prev_high,
            low=profile.prev_low,
            close=profile.prev_close,
            volume=profile.prev_volume,
            vwap=profile.prev_vwap,
            trades=max(1, profile.prev_volume // 150),
        )
    ]
    next_open = profile.prev_open
    for position in range(len(days) - 2, -1, -1):
        close = _round_price(max(0.05, next_open * math.exp(rng.gauss(0.0, 0.015))))
        open_ = _round_price(max(0.05, close * math.exp(rng.gauss(0.0, 0.025))))
        high = _round_price(max(open_, close) * (1.0 + abs(rng.gauss(0.0, 0.012))))
        low = _round_price(min(open_, close) * (1.0 - abs(rng.gauss(0.0, 0.012))))
        volume = volumes[position]
        bars.append(
            DailyBar(
                day=days[position],
                open=open_,
                high=high,
                low=low,
                close=close,
                volume=volume,
                vwap=round((high + low + 2.0 * close) / 4.0, 4),
                trades=max(1, volume // 150),
            )
        )
        next_open = open_
    bars.reverse()
    return bars
