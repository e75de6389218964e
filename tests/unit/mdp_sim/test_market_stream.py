"""The synthetic market's event stream: determinism, consistency, sessions and scenario roles."""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import defaultdict
from datetime import date, datetime, time

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdp_core.clock import ET, from_ns, to_ns
from mdp_sim.market import LULD_HALT, LULD_RESUME, Market, MarketUpdate, event_time_ms
from mdp_sim.scenario import Role, ScenarioConfig

DAY = date(2025, 3, 3)  # a Monday
NS = 1_000_000_000
MS = 1_000_000

Events = list[dict[str, object]]


def at(day: date, hh: int, mm: int, ss: int = 0) -> int:
    return to_ns(datetime.combine(day, time(hh, mm, ss), tzinfo=ET))


def et_time(ms: int) -> time:
    return from_ns(ms * MS, ET).time()


def num(event: dict[str, object], key: str) -> float:
    value = event[key]
    assert isinstance(value, int | float)
    return float(value)


def integer(event: dict[str, object], key: str) -> int:
    value = event[key]
    assert isinstance(value, int)
    return value


def symbol_of(event: dict[str, object]) -> str:
    value = event.get("sym", event.get("T"))
    assert isinstance(value, str)
    return value


@pytest.fixture(scope="module")
def morning() -> tuple[Market, Events]:
    """30 symbols from 09:25 to 09:42: the open, its spike, the first bands and minute bars."""
    market = Market(ScenarioConfig(seed=11, symbols=30, trading_day=DAY, start=time(9, 25)))
    update = market.advance(at(DAY, 9, 42))
    return market, update.events


@pytest.fixture(scope="module")
def whole_day() -> tuple[Market, MarketUpdate]:
    """A thin 40-symbol day from 03:59 to past 20:00, for sessions and the scenario roles."""
    config = ScenarioConfig(seed=3, symbols=40, trading_day=DAY, start=time(3, 59), activity=0.3)
    market = Market(config)
    update = market.advance(at(DAY, 20, 30))
    return market, update


def test_same_seed_gives_the_same_stream_and_another_seed_does_not() -> None:
    def run(seed: int) -> MarketUpdate:
        config = ScenarioConfig(seed=seed, symbols=25, trading_day=DAY, start=time(9, 29))
        market = Market(config)
        return market.advance(market.now_ns + 90 * NS)

    first, second, other = run(5), run(5), run(6)
    assert first.events
    assert first == second
    assert first.events != other.events


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(st.integers(min_value=1, max_value=9_000), min_size=1, max_size=12))
def test_chopping_time_differently_gives_identical_output(steps: list[int]) -> None:
    config = ScenarioConfig(seed=2, symbols=12, trading_day=DAY, start=time(9, 29, 50))
    whole = Market(config)
    end = whole.now_ns + 25 * NS
    expected = whole.advance(end)
    chopped = Market(config)
    events: Events = []
    articles: list[dict[str, object]] = []
    cursor = chopped.now_ns
    for step in steps:
        cursor = min(end, cursor + step * MS)
        update = chopped.advance(cursor)
        events += update.events
        articles += update.articles
    rest = chopped.advance(end)
    assert events + rest.events == expected.events
    assert articles + rest.articles == expected.articles
    assert chopped.now_ns == end


@settings(max_examples=8, deadline=None)
@given(sizes=st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=8))
def test_take_hands_out_whole_instants_of_the_same_stream(sizes: list[int]) -> None:
    config = ScenarioConfig(seed=4, symbols=10, trading_day=DAY, start=time(9, 30))
    taken: Events = []
    articles: list[dict[str, object]] = []
    market = Market(config)
    for size in sizes:
        update = market.take(size)
        assert len(update.events) >= size
        if taken:
            assert event_time_ms(update.events[0]) > event_time_ms(taken[-1])
        taken += update.events
        articles += update.articles
        assert market.now_ns == event_time_ms(taken[-1]) * MS
    reference = Market(config).advance(market.now_ns)
    assert taken == reference.events
    assert articles == reference.articles


@settings(max_examples=10, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32),
    start=st.sampled_from([time(4, 0), time(9, 29, 45), time(15, 59, 45), time(19, 59, 30)]),
)
def test_any_seed_keeps_bars_volumes_and_quotes_consistent(seed: int, start: time) -> None:
    market = Market(ScenarioConfig(seed=seed, symbols=8, trading_day=DAY, start=start))
    events = market.advance(market.now_ns + 40 * NS).events
    # The day's volume before the start counts too (as in a feed joined late).
    volume: dict[str, int] = {symbol: market.opening(symbol)[0] for symbol in market.profiles}
    window: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for e in events:
        kind = e["ev"]
        if kind == "T":
            assert num(e, "p") > 0
            volume[symbol_of(e)] += integer(e, "s")
            window[symbol_of(e)].append((num(e, "p"), integer(e, "s")))
        elif kind == "Q":
            assert 0 < num(e, "bp") < num(e, "ap")
        elif kind == "A":
            inside = window.pop(symbol_of(e))
            assert e["v"] == sum(s for _, s in inside)
            assert e["h"] == max(p for p, _ in inside)
            assert e["l"] == min(p for p, _ in inside)
            assert e["av"] == volume[symbol_of(e)]
    assert all(et_time(event_time_ms(e)) <= time(20, 0) for e in events)


def test_events_are_time_ordered_with_increasing_sequences(morning: tuple[Market, Events]) -> None:
    _, events = morning
    times = [event_time_ms(e) for e in events]
    assert times == sorted(times)
    last_seq: dict[str, int] = {}
    for event in events:
        if "q" in event or event["ev"] == "NOI":
            seq = integer(event, "q" if "q" in event else "i")
            sym = symbol_of(event)
            assert seq > last_seq.get(sym, 0)
            last_seq[sym] = seq


def test_second_and_minute_bars_are_built_from_the_trades_inside_them(
    morning: tuple[Market, Events],
) -> None:
    _, events = morning
    trades: dict[str, list[tuple[int, float, int]]] = defaultdict(list)
    for e in events:
        if e["ev"] == "T":
            trades[symbol_of(e)].append((integer(e, "t"), num(e, "p"), integer(e, "s")))
    bars = [e for e in events if e["ev"] in ("A", "AM")]
    assert {e["ev"] for e in bars} == {"A", "AM"}
    for bar in bars:
        start, end = integer(bar, "s"), integer(bar, "e")
        assert end - start == (1_000 if bar["ev"] == "A" else 60_000)
        series = trades[symbol_of(bar)]
        lo = bisect_right(series, (start, math.inf, 0))
        hi = bisect_right(series, (end, math.inf, 0))
        inside = [(p, s) for _, p, s in series[lo:hi]]
        assert inside, "bars are only sent for symbols that traded"
        prices = [p for p, _ in inside]
        volume = sum(s for _, s in inside)
        assert bar["o"] == prices[0]
        assert bar["c"] == prices[-1]
        assert bar["h"] == max(prices)
        assert bar["l"] == min(prices)
        assert bar["v"] == volume
        assert bar["z"] == volume // len(inside)
        assert num(bar, "vw") == pytest.approx(sum(p * s for p, s in inside) / volume, abs=1e-4)


def test_accumulated_volume_and_day_vwap_follow_the_trades(
    morning: tuple[Market, Events],
) -> None:
    market, events = morning
    # The day's volume before 09:25 counts too (as in a feed joined late), with no prints.
    volume: dict[str, int] = {symbol: market.opening(symbol)[0] for symbol in market.profiles}
    notional: dict[str, float] = {symbol: market.opening(symbol)[1] for symbol in market.profiles}
    assert all(volume.values())
    last_av: dict[str, int] = defaultdict(int)
    for e in events:
        sym = symbol_of(e) if e["ev"] in ("T", "A", "AM") else ""
        if e["ev"] == "T":
            volume[sym] += integer(e, "s")
            notional[sym] += num(e, "p") * integer(e, "s")
        elif e["ev"] in ("A", "AM"):
            assert e["av"] == volume[sym]
            assert integer(e, "av") >= last_av[sym]
            last_av[sym] = integer(e, "av")
            assert num(e, "a") == pytest.approx(notional[sym] / volume[sym], abs=1e-4)


def test_official_open_is_the_first_regular_trade_and_absent_before(
    morning: tuple[Market, Events],
) -> None:
    _, events = morning
    open_ms = at(DAY, 9, 30) // MS
    first_regular: dict[str, float] = {}
    for e in events:
        if e["ev"] == "T" and integer(e, "t") >= open_ms:
            first_regular.setdefault(symbol_of(e), num(e, "p"))
        if e["ev"] in ("A", "AM"):
            if integer(e, "e") <= open_ms:
                assert "op" not in e
            elif "op" in e:
                assert e["op"] == first_regular[symbol_of(e)]


def test_prices_are_positive_on_the_tick_and_trades_print_inside_the_quote(
    morning: tuple[Market, Events],
) -> None:
    _, events = morning
    last_quote: dict[str, dict[str, object]] = {}
    for e in events:
        if e["ev"] == "Q":
            assert 0 < num(e, "bp") < num(e, "ap")
            assert integer(e, "bs") >= 1
            assert integer(e, "as") >= 1
            last_quote[symbol_of(e)] = e
        elif e["ev"] == "T":
            price = num(e, "p")
            assert price > 0
            decimals = 2 if price >= 1 else 4
            assert round(price, decimals) == price
            quote = last_quote[symbol_of(e)]
            assert num(quote, "bp") <= price <= num(quote, "ap")
            assert integer(e, "s") >= 1
            if e["x"] == 4:
                assert e["trfi"] in (201, 202, 203)
                assert "trft" in e


def test_trades_carry_odd_lots_extended_hours_flags_and_venues(
    whole_day: tuple[Market, MarketUpdate],
) -> None:
    _, update = whole_day
    trades = [e for e in update.events if e["ev"] == "T"]
    odd = [e for e in trades if integer(e, "s") < 100]
    assert len(odd) > len(trades) // 20
    assert all(37 in e["c"] for e in odd)  # type: ignore[operator]
    assert {e["x"] for e in trades} >= {4, 10, 12}
    early = [e for e in trades if et_time(integer(e, "t")) < time(9, 30)]
    assert early
    assert all(12 in e["c"] for e in early)  # type: ignore[operator]


def test_nothing_happens_outside_04_00_to_20_00(whole_day: tuple[Market, MarketUpdate]) -> None:
    _, update = whole_day
    first, last = event_time_ms(update.events[0]), event_time_ms(update.events[-1])
    assert time(4, 0) <= et_time(first) < time(4, 5)
    assert time(19, 0) < et_time(last) <= time(20, 0)
    publish = [a["publishDate"] for a in update.articles]
    assert publish == sorted(publish)  # type: ignore[type-var]


def test_the_clock_waits_for_the_04_00_reset() -> None:
    config = ScenarioConfig(seed=1, symbols=20, trading_day=DAY, start=time(3, 59))
    market = Market(config)
    assert market.advance(at(DAY, 3, 59, 59)).events == []
    update = market.advance(at(DAY, 4, 10))
    assert update.events
    assert all(et_time(event_time_ms(e)) > time(4, 0) for e in update.events)


def test_halted_symbols_do_not_trade_until_they_resume(
    whole_day: tuple[Market, MarketUpdate],
) -> None:
    market, update = whole_day
    halters = [s for s, p in market.profiles.items() if p.role is Role.HALTER]
    halts: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for e in update.events:
        if e["ev"] == "LULD":
            assert 0 < num(e, "l") < num(e, "h")
            if e["i"] == (LULD_HALT,):
                halts[symbol_of(e)].append((integer(e, "t"), 0))
            elif e["i"] == (LULD_RESUME,):
                began, _ = halts[symbol_of(e)][-1]
                halts[symbol_of(e)][-1] = (began, integer(e, "t"))
    assert halters
    assert all(halts[s] for s in halters)
    for sym, spans in halts.items():
        for began, ended in spans:
            assert ended - began == pytest.approx(300_000, abs=1_000)
            during = [
                e
                for e in update.events
                if e["ev"] in ("T", "Q") and e["sym"] == sym and began < integer(e, "t") < ended
            ]
            assert during == []


def test_band_updates_and_imbalances_are_published(
    whole_day: tuple[Market, MarketUpdate],
) -> None:
    _, update = whole_day
    bands = [e for e in update.events if e["ev"] == "LULD" and e["i"] == ()]
    assert {et_time(integer(e, "t")).replace(second=0, microsecond=0) for e in bands} >= {
        time(9, 30),
        time(12, 0),
    }
    imbalance_times = {
        (et_time(integer(e, "t")).replace(second=0, microsecond=0), e["at"])
        for e in update.events
        if e["ev"] == "NOI"
    }
    assert imbalance_times == {
        (time(9, 28), 930),
        (time(9, 29), 930),
        (time(15, 50), 1600),
        (time(15, 55), 1600),
    }


TradesBySymbol = dict[str, list[tuple[int, float]]]


@pytest.fixture(scope="module")
def day_trades(whole_day: tuple[Market, MarketUpdate]) -> TradesBySymbol:
    """(time, price) of every trade of the whole day, by symbol."""
    grouped: TradesBySymbol = defaultdict(list)
    for e in whole_day[1].events:
        if e["ev"] == "T":
            grouped[symbol_of(e)].append((integer(e, "t"), num(e, "p")))
    return grouped


def test_gappers_open_pre_market_far_from_the_previous_close(
    whole_day: tuple[Market, MarketUpdate], day_trades: TradesBySymbol
) -> None:
    market, _update = whole_day
    for sym, profile in market.profiles.items():
        trades = day_trades[sym]
        if profile.role is Role.GAPPER_UP:
            assert et_time(trades[0][0]) < time(9, 30)
            assert trades[0][1] >= 1.14 * profile.prev_close
        elif profile.role is Role.GAPPER_DOWN:
            assert et_time(trades[0][0]) < time(9, 30)
            assert trades[0][1] <= 0.86 * profile.prev_close


def test_fader_gives_back_its_gap(
    whole_day: tuple[Market, MarketUpdate], day_trades: TradesBySymbol
) -> None:
    market, _update = whole_day
    faders = [s for s, p in market.profiles.items() if p.role is Role.FADER]
    assert faders
    for sym in faders:
        trades = day_trades[sym]
        pre = max(p for t, p in trades if et_time(t) < time(9, 30))
        late = [p for t, p in trades if time(13, 0) <= et_time(t) < time(16, 0)]
        assert pre >= 1.15 * market.profiles[sym].prev_close
        assert max(late) < pre * 0.95


def test_hod_runner_makes_repeated_new_highs(
    whole_day: tuple[Market, MarketUpdate], day_trades: TradesBySymbol
) -> None:
    market, _update = whole_day
    runners = [s for s, p in market.profiles.items() if p.role is Role.HOD_RUNNER]
    assert runners
    for sym in runners:
        high, new_highs = 0.0, 0
        for t, price in day_trades[sym]:
            if time(9, 30) <= et_time(t) < time(16, 0) and price > high:
                new_highs += high > 0
                high = price
        assert new_highs >= 5


def test_news_runner_article_comes_before_its_run(
    whole_day: tuple[Market, MarketUpdate], day_trades: TradesBySymbol
) -> None:
    market, update = whole_day
    runners = [s for s, p in market.profiles.items() if p.role is Role.NEWS_RUNNER]
    assert runners
    for sym in runners:
        published = min(
            datetime.fromisoformat(str(a["publishDate"])).timestamp() * 1000
            for a in update.articles
            if a["companies"][0]["ticker"] == sym  # type: ignore[index]
            and a["sentiment"] == "positive"
        )
        trades = day_trades[sym]
        before = [p for t, p in trades if t < published]
        after = [p for t, p in trades if t > published]
        level = max(before[-20:]) if before else market.profiles[sym].prev_close
        assert max(after) > 1.15 * level
        volume_before = sum(1 for t, _ in trades if published - 1_800_000 < t < published)
        volume_after = sum(1 for t, _ in trades if published < t < published + 1_800_000)
        assert volume_after > 2 * volume_before


def test_articles_name_simulated_symbols_with_unique_links(
    whole_day: tuple[Market, MarketUpdate],
) -> None:
    market, update = whole_day
    from mdp_core.news import decode_article

    links = [a["link"] for a in update.articles]
    assert len(links) == len(set(links))
    for raw in update.articles:
        article = decode_article(msgspec.json.encode(raw))
        assert article.language == "en"
        assert article.countries == ("US",)
        assert article.companies
        assert all(c.ticker in market.profiles for c in article.companies)


def test_events_decode_with_the_core_wire_models(morning: tuple[Market, Events]) -> None:
    from mdp_core.wire import decode_frame

    _, events = morning
    frame = decode_frame(msgspec.json.encode(events))
    assert frame.errors == []
    assert len(frame.events) == len(events)


def test_switches_turn_off_quotes_and_bars() -> None:
    config = ScenarioConfig(
        seed=1,
        symbols=15,
        trading_day=DAY,
        start=time(9, 30),
        quotes=False,
        second_aggregates=False,
        minute_aggregates=False,
        news_per_hour=0.0,
    )
    market = Market(config)
    update = market.advance(market.now_ns + 130 * NS)
    kinds = {e["ev"] for e in update.events}
    assert "T" in kinds
    assert kinds.isdisjoint({"Q", "A", "AM"})
    # Without background news only the scripted role articles remain.
    for article in update.articles:
        for company in article["companies"]:  # type: ignore[attr-defined]
            assert market.profiles[company["ticker"]].role is not Role.NORMAL


def test_time_runs_over_the_weekend_into_the_next_trading_day() -> None:
    friday, monday = date(2025, 2, 28), date(2025, 3, 3)
    config = ScenarioConfig(seed=9, symbols=20, trading_day=friday, start=time(19, 58))
    market = Market(config)
    friday_events = market.advance(at(friday, 20, 0)).events
    friday_close = {symbol_of(e): num(e, "p") for e in friday_events if e["ev"] == "T"}
    assert market.advance(at(monday, 4, 0)).events == []
    update = market.advance(at(monday, 4, 30))
    assert market.trading_day == monday
    assert update.events
    assert all(et_time(event_time_ms(e)) > time(4, 0) for e in update.events)
    first_bar: dict[str, dict[str, object]] = {}
    for e in update.events:
        if e["ev"] == "A":
            first_bar.setdefault(symbol_of(e), e)
    assert all(bar["av"] == bar["v"] for bar in first_bar.values())
    for sym, price in friday_close.items():
        assert market.profiles[sym].prev_close == price


def test_an_early_close_day_ends_at_17_00() -> None:
    day = date(2025, 11, 28)
    market = Market(ScenarioConfig(seed=1, symbols=20, trading_day=day, start=time(16, 50)))
    update = market.advance(at(day, 18, 0))
    assert update.events
    assert all(et_time(event_time_ms(e)) <= time(17, 0) for e in update.events)
