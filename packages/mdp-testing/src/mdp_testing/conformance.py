"""The analyzer conformance suite, and builders of the events it feeds.

Every analyzer (built-in or plugin) proves it keeps the contract of
:mod:`mdp_analyzers.typing` by subclassing :class:`AnalyzerSuite` in a test module::

    class TestMyAnalyzer(AnalyzerSuite):
        def make_analyzer(self) -> Any:
            return MyAnalyzer()

        def sample_inputs(self) -> list[Any]:
            return [trade("AAPL", at_ms(...), 190.0, 100)]

What is checked: the class attributes; the protocol; that it reads no wall clock; that
``collect`` coalesces (each feed name at most once per call, nothing new on an immediate second
call); that every write names a catalogue feed and carries JSON; that the output is a
deterministic function of the inputs; that kinds it does not consume are ignored; and that
applying the same batch twice changes nothing (or, with ``idempotent = False``, that it does). For a
:class:`~mdp_analyzers.typing.Composer` the output checked is what a flush writes: its state
applied to a :class:`~mdp_analyzers.state.MemoryState`, then one composition from it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, ClassVar

import msgspec
import pytest

from mdp_analyzers.registry import available
from mdp_analyzers.state import MemoryState
from mdp_analyzers.typing import Analyzer, Composer, Output, published
from mdp_cache.keys import feed_for
from mdp_core.clock import ET, to_ns
from mdp_core.events import (
    FairMarketValue,
    LimitUpLimitDown,
    MinuteAggregate,
    Quote,
    SecondAggregate,
    Trade,
)

__all__ = ["AnalyzerSuite", "aggregate", "at_ms", "luld", "quote", "trade"]


def at_ms(day: date, hour: int, minute: int, second: float = 0.0) -> int:
    """Unix milliseconds of an ET wall-clock time on ``day``."""
    whole = int(second)
    micro = round((second - whole) * 1_000_000)
    moment = datetime(day.year, day.month, day.day, hour, minute, whole, micro, tzinfo=ET)
    return to_ns(moment) // 1_000_000


def aggregate(
    symbol: str,
    end_ms: int,
    *,
    close: float = 10.0,
    open_: float | None = None,
    high: float | None = None,
    low: float | None = None,
    volume: int = 100,
    accumulated_volume: int = 1_000,
    official_open: float | None = None,
    minute: bool = False,
) -> SecondAggregate | MinuteAggregate:
    """A one-second (or one-minute) bar ending at ``end_ms``."""
    cls = MinuteAggregate if minute else SecondAggregate
    opening = close if open_ is None else open_
    return cls(
        symbol=symbol,
        volume=volume,
        accumulated_volume=accumulated_volume,
        official_open=official_open,
        vwap=close,
        open=opening,
        high=max(close, opening) if high is None else high,
        low=min(close, opening) if low is None else low,
        close=close,
        day_vwap=close,
        average_size=50.0,
        start_ms=end_ms - (60_000 if minute else 1_000),
        end_ms=end_ms,
    )


def trade(
    symbol: str,
    timestamp_ms: int,
    price: float,
    size: int,
    *,
    exchange: int = 4,
    trade_id: str | None = None,
) -> Trade:
    """A trade print."""
    return Trade(
        symbol=symbol,
        exchange=exchange,
        trade_id=trade_id or f"{symbol}-{timestamp_ms}-{size}",
        price=price,
        size=size,
        timestamp_ms=timestamp_ms,
    )


def quote(symbol: str, timestamp_ms: int, bid: float, ask: float) -> Quote:
    """An NBBO quote."""
    return Quote(
        symbol=symbol,
        bid_price=bid,
        bid_size=1,
        ask_price=ask,
        ask_size=1,
        timestamp_ms=timestamp_ms,
    )


def luld(symbol: str, timestamp_ms: int, *indicators: int) -> LimitUpLimitDown:
    """LULD bands with indicators (17 = halt, 18 = resume)."""
    return LimitUpLimitDown(
        symbol=symbol,
        high_limit=11.0,
        low_limit=9.0,
        indicators=tuple(indicators),
        timestamp_ms=timestamp_ms,
    )


def _forbidden(*_: object, **__: object) -> float:
    raise AssertionError("analyzers must take time from now_ns, not the wall clock")


class AnalyzerSuite:
    """Base class of a conformance test class (see the module docstring)."""

    #: Whether applying the same batch twice must give the same output as once.
    idempotent: ClassVar[bool] = True
    #: The trading day the default instants fall on (a regular Wednesday).
    day: ClassVar[date] = date(2026, 3, 4)

    def make_analyzer(self) -> Any:
        """A fresh analyzer under test."""
        raise NotImplementedError

    def sample_inputs(self) -> list[Any]:
        """Inputs the analyzer consumes, enough to produce output."""
        raise NotImplementedError

    def now_ns(self) -> int:
        """The instant the suite collects at (after every sample input)."""
        return at_ms(self.day, 15, 0) * 1_000_000

    def foreign_inputs(self) -> list[Any]:
        """Inputs of a kind the analyzer does not consume."""
        day = self.day
        return [
            FairMarketValue(fair_value=1.0, symbol="ZZZ", timestamp_ns=at_ms(day, 10, 0) * 10**6)
        ]

    # --- helpers --------------------------------------------------------------------------

    def _run(self, batches: Sequence[Sequence[Any]]) -> Output:
        analyzer = self.make_analyzer()
        for batch in batches:
            analyzer.apply(list(batch), self.now_ns())
        return self._flush(analyzer, MemoryState())

    def _flush(self, analyzer: Any, state: MemoryState) -> Output:
        """What one flush writes: collected output, plus a composition for a Composer."""
        output: Output = analyzer.collect(self.now_ns())
        state.apply_now(output.state)
        stored = published(state.applied.accepted)  # rows the backend publishes once stored
        if not isinstance(analyzer, Composer):
            return Output(widgets=[*output.widgets, *stored], state=output.state)
        reads = analyzer.reads(self.now_ns())
        composed = analyzer.compose(self.now_ns(), [state.answer_now(read) for read in reads])
        return Output(widgets=[*output.widgets, *stored, *composed], state=output.state)

    @staticmethod
    def _digest(output: Output) -> list[tuple[str, bytes, bool]]:
        return sorted((w.name, w.payload, w.publish) for w in output.widgets)

    # --- the contract ---------------------------------------------------------------------

    def test_declares_name_and_consumes(self) -> None:
        """The registry name and consumed kinds are declared on the class."""
        analyzer = self.make_analyzer()
        assert isinstance(type(analyzer).name, str)
        assert type(analyzer).name
        assert isinstance(type(analyzer).consumes, frozenset)
        assert type(analyzer).consumes
        assert all(isinstance(kind, str) for kind in type(analyzer).consumes)

    def test_is_an_analyzer(self) -> None:
        """The instance satisfies the Analyzer protocol."""
        assert isinstance(self.make_analyzer(), Analyzer)

    def test_registered_under_its_name(self) -> None:
        """The entry point of its name loads this very class."""
        analyzer = self.make_analyzer()
        entry = available().get(type(analyzer).name)
        if entry is None:
            pytest.skip(f"{type(analyzer).name!r} is not registered (a plugin under test)")
        assert entry.load() is type(analyzer)

    def test_reads_no_wall_clock(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Time comes only from now_ns."""
        analyzer = self.make_analyzer()
        inputs = self.sample_inputs()
        monkeypatch.setattr(time, "time", _forbidden)
        monkeypatch.setattr(time, "time_ns", _forbidden)
        analyzer.apply(inputs, self.now_ns())
        analyzer.collect(self.now_ns())

    def test_produces_output_from_samples(self) -> None:
        """The samples produce widget writes."""
        assert self._run([self.sample_inputs()]).widgets

    def test_writes_name_catalogue_feeds_with_json(self) -> None:
        """Every write targets a catalogue feed with a JSON payload."""
        for write in self._run([self.sample_inputs()]).widgets:
            assert write.feed.matches(write.name), write.name
            assert feed_for(write.name) is not None, write.name
            msgspec.json.decode(write.payload)

    def test_collect_coalesces(self) -> None:
        """Each name at most once per flush; nothing new right after."""
        analyzer = self.make_analyzer()
        inputs = self.sample_inputs()
        analyzer.apply(inputs, self.now_ns())
        analyzer.apply(inputs[::-1], self.now_ns())
        first = self._flush(analyzer, MemoryState())
        names = [write.name for write in first.widgets]
        assert len(names) == len(set(names)), "a feed name was written twice in one flush"
        assert not analyzer.collect(self.now_ns()).widgets, "nothing changed since"

    def test_output_is_deterministic(self) -> None:
        """Same inputs, same bytes."""
        inputs = self.sample_inputs()
        assert self._digest(self._run([inputs])) == self._digest(self._run([inputs]))

    def test_ignores_kinds_it_does_not_consume(self) -> None:
        """Foreign kinds change nothing."""
        inputs = self.sample_inputs()
        plain = self._digest(self._run([inputs]))
        mixed = self._digest(self._run([self.foreign_inputs(), inputs]))
        assert plain == mixed

    def test_duplicate_batch_changes_nothing(self) -> None:
        """A batch applied twice gives the output of once (or, declared not idempotent, not).

        Never skipped: an analyzer that declares ``idempotent = False`` must show it, so the
        flag cannot hide a suite that checks nothing.
        """
        inputs = self.sample_inputs()
        once = self._digest(self._run([inputs]))
        twice = self._digest(self._run([inputs, inputs]))
        if self.idempotent:
            assert once == twice
        else:
            assert once != twice, (
                "declared idempotent = False, yet a duplicate batch changes nothing: "
                "declare it idempotent so the suite checks it"
            )
