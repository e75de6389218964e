"""The market's REST views agree with its stream; universe, calendar views and the SimClock."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date, datetime, time

import pytest

from mdp_cache.volume_profile import build_profile, lookback_start, relative_volume
from mdp_core.clock import ET, ManualClock, to_ns
from mdp_sim.market import Market, event_time_ms
from mdp_sim.reference import AVERAGE_WINDOW, HISTORY_DAYS
from mdp_sim.scenario import MAX_SYMBOLS, Role, ScenarioConfig, ScenarioError
from mdp_sim.simclock import SimClock

DAY = date(2025, 3, 3)
PREVIOUS_DAY = date(2025, 2, 28)
NS = 1_000_000_000
MS = 1_000_000


def at(day: date, hh: int, mm: int, ss: int = 0) -> int:
    return to_ns(datetime.combine(day, time(hh, mm, ss), tzinfo=ET))


@pytest.fixture(scope="module")
def market() -> Market:
    return Market(ScenarioConfig(seed=21, symbols=40, trading_day=DAY, start=time(9, 29)))


def test_snapshot_follows_what_has_been_streamed() -> None:
    market = Market(ScenarioConfig(seed=8, symbols=20, trading_day=DAY, start=time(9, 29)))
    events = market.advance(at(DAY, 9, 33)).events
    # Stop in the middle of a second: its bars are not out yet, so the snapshot must not be either.
    events += market.advance(at(DAY, 9, 33) + 400 * MS).events
    last_av: dict[str, object] = {}
    last_trade: dict[str, dict[str, object]] = {}
    last_minute: dict[str, dict[str, object]] = {}
    for e in events:
        if e["ev"] == "A":
            last_av[str(e["sym"])] = e["av"]
        elif e["ev"] == "AM":
            last_minute[str(e["sym"])] = e
        elif e["ev"] == "T" and event_time_ms(e) <= at(DAY, 9, 33) // MS:
            last_trade[str(e["sym"])] = e
    assert last_av
    for sym, profile in market.profiles.items():
        snap = market.snapshot(sym)
        assert snap is not None
        day, prev = snap["day"], snap["prevDay"]
        assert isinstance(day, dict)
        assert isinstance(prev, dict)
        assert prev["c"] == profile.prev_close
        assert prev["v"] == profile.prev_volume
        if sym not in last_av:
            assert day["v"] == 0
            continue
        assert day["v"] == last_av[sym]
        trade = last_trade[sym]
        assert day["c"] == trade["p"]
        assert snap["lastTrade"] == {
            "c": list(trade.get("c", ())),  # type: ignore[call-overload]
            "i": trade["i"],
            "p": trade["p"],
            "s": trade["s"],
            "t": event_time_ms(trade) * MS,
            "x": trade["x"],
        }
        assert snap["todaysChange"] == pytest.approx(float(trade["p"]) - profile.prev_close)  # type: ignore[arg-type]
        quote = snap["lastQuote"]
        assert isinstance(quote, dict)
        assert quote["p"] < quote["P"]
        if sym in last_minute:
            minute = snap["min"]
            assert isinstance(minute, dict)
            assert minute["av"] == last_minute[sym]["av"]
            assert minute["t"] == last_minute[sym]["s"]


def test_snapshot_before_any_trade_and_for_unknown_symbols(market: Market) -> None:
    fresh = Market(ScenarioConfig(seed=21, symbols=40, trading_day=DAY, start=time(3, 0)))
    row = fresh.snapshot(next(iter(fresh.profiles)))
    assert row is not None
    assert row["day"] == {"o": 0.0, "h": 0.0, "l": 0.0, "c": 0.0, "v": 0, "vw": 0.0}
    assert "lastTrade" not in row
    assert market.snapshot("NOPE!") is None
    assert market.previous_close("NOPE!") is None
    assert market.ticker_details("NOPE!") is None
    assert market.free_float("NOPE!") is None
    assert market.daily_bars("NOPE!", DAY, DAY) == []
    some = list(market.profiles)[:3]
    assert [r["ticker"] for r in market.snapshot_all([*some, "NOPE!"])] == some
    assert len(market.snapshot_all()) == len(market.profiles)


def test_previous_close_and_daily_bars_match_the_profile(market: Market) -> None:
    for sym, profile in market.profiles.items():
        prev = market.previous_close(sym)
        assert prev is not None
        assert (prev["T"], prev["o"], prev["h"], prev["l"], prev["c"], prev["v"], prev["vw"]) == (
            sym,
            profile.prev_open,
            profile.prev_high,
            profile.prev_low,
            profile.prev_close,
            profile.prev_volume,
            profile.prev_vwap,
        )
        bars = market.daily_bars(sym, date(2024, 1, 1), DAY)
        assert len(bars) == HISTORY_DAYS
        assert bars[-1] == {k: v for k, v in prev.items() if k != "T"}
        recent = [int(b["v"]) for b in bars[-AVERAGE_WINDOW:]]  # type: ignore[call-overload]
        assert sum(recent) == AVERAGE_WINDOW * profile.avg_volume
        stamps = [int(b["t"]) for b in bars]  # type: ignore[call-overload]
        assert stamps == sorted(stamps)
        for bar in bars:
            assert 0 < bar["l"] <= bar["o"] <= bar["h"]  # type: ignore[operator]
            assert bar["l"] <= bar["c"] <= bar["h"]  # type: ignore[operator]
        assert market.daily_bars(sym, PREVIOUS_DAY, PREVIOUS_DAY) == [bars[-1]]


def test_grouped_daily_lists_every_symbol_for_a_history_day(market: Market) -> None:
    rows = market.grouped_daily(PREVIOUS_DAY)
    assert {r["T"]: r["c"] for r in rows} == {s: p.prev_close for s, p in market.profiles.items()}
    assert market.grouped_daily(date(2025, 3, 1)) == []  # a Saturday


def test_details_and_float_describe_the_profile(market: Market) -> None:
    for sym, profile in market.profiles.items():
        details = market.ticker_details(sym)
        assert details is not None
        assert details["ticker"] == sym
        assert details["name"] == profile.name
        assert details["primary_exchange"] == profile.primary_exchange
        assert details["share_class_shares_outstanding"] == profile.shares_outstanding
        floating = market.free_float(sym)
        assert floating is not None
        assert floating["free_float"] == profile.free_float
        assert 0 < floating["free_float_percent"] <= 100  # type: ignore[operator]


@pytest.mark.parametrize(
    ("moment", "market_word", "early", "after"),
    [
        (datetime(2025, 3, 3, 3, 0, tzinfo=ET), "closed", False, False),
        (datetime(2025, 3, 3, 5, 0, tzinfo=ET), "extended-hours", True, False),
        (datetime(2025, 3, 3, 10, 0, tzinfo=ET), "open", False, False),
        (datetime(2025, 3, 3, 17, 0, tzinfo=ET), "extended-hours", False, True),
        (datetime(2025, 3, 1, 12, 0, tzinfo=ET), "closed", False, False),
        (datetime(2025, 12, 25, 12, 0, tzinfo=ET), "closed", False, False),
    ],
)
def test_market_status_follows_the_calendar(
    market: Market, moment: datetime, market_word: str, early: bool, after: bool
) -> None:
    status = market.market_status(to_ns(moment))
    assert status["market"] == market_word
    assert status["earlyHours"] is early
    assert status["afterHours"] is after
    assert status["serverTime"] == moment.isoformat(timespec="seconds")
    exchanges = status["exchanges"]
    assert isinstance(exchanges, dict)
    assert exchanges["nasdaq"] == market_word


def test_upcoming_holidays_include_closures_and_early_closes(market: Market) -> None:
    rows = market.upcoming_holidays(to_ns(datetime(2025, 11, 1, 12, 0, tzinfo=ET)))
    by_date = {(r["date"], r["exchange"]): r for r in rows}
    thanksgiving = by_date[("2025-11-27", "NYSE")]
    assert thanksgiving["status"] == "closed"
    assert "open" not in thanksgiving
    early = by_date[("2025-11-28", "NASDAQ")]
    assert early["status"] == "early-close"
    assert early["open"] == "2025-11-28T14:30:00.000Z"
    assert early["close"] == "2025-11-28T18:00:00.000Z"
    assert ("2025-12-25", "NYSE") in by_date
    assert ("2026-01-01", "NYSE") in by_date
    assert all(str(r["date"]) >= "2025-11-01" for r in rows)


def test_a_large_universe_has_unique_plausible_tickers_and_a_full_cast() -> None:
    market = Market(ScenarioConfig(seed=1, symbols=MAX_SYMBOLS, trading_day=DAY))
    profiles = list(market.profiles.values())
    assert len(profiles) == MAX_SYMBOLS
    assert all(re.fullmatch(r"[A-Z]{1,5}", p.symbol) for p in profiles)
    closes = [p.prev_close for p in profiles]
    assert min(closes) < 1.5
    assert max(closes) > 300
    assert sum(p.free_float < 10_000_000 for p in profiles) > 100
    assert all(0 < p.free_float <= p.shares_outstanding for p in profiles)
    assert all(p.prev_low <= p.prev_close <= p.prev_high for p in profiles)
    assert all(p.prev_low <= p.prev_vwap <= p.prev_high for p in profiles)
    roles = Counter(p.role for p in profiles)
    assert all(roles[role] >= 5 for role in Role if role is not Role.NORMAL)


@pytest.mark.parametrize(("symbols", "per_role"), [(20, 1), (300, 3)])
def test_every_role_is_cast_once_the_universe_is_big_enough(symbols: int, per_role: int) -> None:
    market = Market(ScenarioConfig(seed=5, symbols=symbols, trading_day=DAY))
    roles = Counter(p.role for p in market.profiles.values())
    assert all(roles[role] == per_role for role in Role if role is not Role.NORMAL)


def test_the_universe_is_the_same_for_the_same_seed() -> None:
    one = Market(ScenarioConfig(seed=3, symbols=50, trading_day=DAY))
    two = Market(ScenarioConfig(seed=3, symbols=50, trading_day=DAY))
    other = Market(ScenarioConfig(seed=4, symbols=50, trading_day=DAY))
    assert one.profiles == two.profiles
    assert one.profiles != other.profiles


@pytest.mark.parametrize(
    "kwargs",
    [{"symbols": 0}, {"symbols": MAX_SYMBOLS + 1}, {"activity": 0.0}, {"news_per_hour": -1.0}],
)
def test_impossible_scenarios_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ScenarioError):
        ScenarioConfig(**kwargs)  # type: ignore[arg-type]


def test_a_closed_day_cannot_be_simulated() -> None:
    with pytest.raises(ScenarioError, match="not a trading day"):
        Market(ScenarioConfig(trading_day=date(2025, 3, 1)))


def test_without_a_day_the_most_recent_trading_day_is_used() -> None:
    market = Market(ScenarioConfig(symbols=5))
    assert market.calendar.is_trading_day(market.trading_day)
    assert market.now_ns == to_ns(datetime.combine(market.trading_day, time(9, 25), tzinfo=ET))


def test_sim_clock_maps_real_time_to_simulated_time() -> None:
    real = ManualClock(0)
    clock = SimClock(1_000 * NS, speed=10.0, real=real)
    assert clock.target_ns() == 1_000 * NS
    real.advance(2.0)
    assert clock.target_ns() == 1_020 * NS
    clock.set_speed(1.0)
    real.advance(3.0)
    assert clock.target_ns() == 1_023 * NS
    unpaced = SimClock(0, speed=None, real=real)
    assert unpaced.target_ns() > 10**18
    unpaced.set_speed(2.0, at_ns=500 * NS)
    real.advance(1.0)
    assert unpaced.target_ns() == 502 * NS
    with pytest.raises(ValueError, match="speed"):
        SimClock(0, speed=0.0)


def test_reference_data_is_plausible_for_the_price() -> None:
    """Floats and average volumes a trader would believe (issue 17: no 897-billion-share floats
    for $1-3 stocks)."""
    market = Market(ScenarioConfig(seed=1, symbols=MAX_SYMBOLS, trading_day=DAY))
    for p in market.profiles.values():
        assert p.shares_outstanding <= 16e9, p
        if p.prev_close < 5:
            assert p.shares_outstanding * p.prev_close <= 1.5e9, p  # micro and small caps
        assert p.avg_volume <= max(20_000, p.free_float * 0.3) + 1, p
        assert p.avg_volume >= min(20_000, p.free_float * 0.3) - 1, p


def test_minute_history_is_generated_consistent_with_the_daily_bars(market: Market) -> None:
    symbol = sorted(market.profiles)[3]
    day = PREVIOUS_DAY
    (daily,) = market.daily_bars(symbol, day, day)
    minutes = market.minute_bars(symbol, day, day)
    assert sum(int(row["v"]) for row in minutes) == daily["v"]  # type: ignore[call-overload]
    starts = [int(row["t"]) for row in minutes]  # type: ignore[call-overload]
    assert starts == sorted(starts)
    assert starts[0] >= at(day, 4, 0) // MS
    assert starts[-1] < at(day, 20, 0) // MS
    assert all(daily["l"] <= row["c"] <= daily["h"] for row in minutes)  # type: ignore[operator]
    # The regular session carries most of the volume, the open minute more than a quiet one.
    by_start = {int(row["t"]): int(row["v"]) for row in minutes}  # type: ignore[call-overload]
    assert by_start[at(day, 9, 30) // MS] > by_start.get(at(day, 5, 0) // MS, 0)
    # Generated, never recorded: the same seed gives the same history.
    again = Market(ScenarioConfig(seed=21, symbols=40, trading_day=DAY, start=time(9, 29)))
    assert again.minute_bars(symbol, day, day) == minutes
    assert market.minute_bars("NOPE", day, day) == []


@pytest.mark.parametrize("start", [time(4, 0), time(9, 25)])
def test_todays_tape_reads_about_1x_time_of_day_rvol_for_ordinary_symbols(start: time) -> None:
    """Minute history and today's tape share one shape and scale, whenever the day starts."""
    day = DAY
    market = Market(ScenarioConfig(seed=5, symbols=60, trading_day=day, start=start))
    if start == time(4, 0):
        assert market.opening(sorted(market.profiles)[0]) == (0, 0.0)
    until = at(day, 10, 15)
    latest: dict[str, tuple[int, int]] = {}
    for event in market.advance(until).events:
        if event["ev"] == "AM":
            latest[str(event["sym"])] = (int(event["av"]), int(event["e"]))  # type: ignore[call-overload]
    ratios: dict[str, float] = {}
    for symbol, (volume, end_ms) in latest.items():
        history = [
            (int(row["t"]), int(row["v"]))  # type: ignore[call-overload]
            for row in market.minute_bars(symbol, lookback_start(day, 20), PREVIOUS_DAY)
        ]
        rvol = relative_volume(build_profile(day, history, days=20), volume, end_ms)
        if rvol is not None:
            ratios[symbol] = rvol
    ordinary = sorted(r for s, r in ratios.items() if market.profiles[s].role is Role.NORMAL)
    movers = [r for s, r in ratios.items() if market.profiles[s].role is not Role.NORMAL]
    assert 0.7 <= ordinary[len(ordinary) // 2] <= 1.4
    assert max(movers) > 5 * ordinary[len(ordinary) // 2]
