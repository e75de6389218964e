"""Benchmark: bytes of the three boards on the wire, whole against deltas, from a simulated session.

Runs the leaderboard analyzer (``mdp_analyzers.top_stocks``, in memory, no servers) over
``--minutes`` of the simulator's session from ``--start`` with ``--symbols`` symbols and its
reference data, records every board publication (one per board per composition, about once a
second of market time) and frames each as the WDS would: a whole ``update``, or the ``delta``
of :mod:`mdp_wds.deltas` from the publication before. Prints the bytes per second of market
time of each, which is what one dashboard following the boards receives for them at a 1x
market (the demo's ``--speed`` multiplies the market's rate, not the boards' cadence).

A stand-in for ``bench/dashboard_wire.py`` where a browser cannot be driven in real time (a
shared, overloaded machine): it counts the boards only, not the quote, alert, news and bar
feeds. Not a test.

Usage::

    uv run python bench/board_deltas.py [--symbols 300] [--minutes 3] [--start 09:45]
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta

import msgspec

from mdp_analyzers import replay
from mdp_analyzers.top_stocks import TopStocksAnalyzer
from mdp_analyzers.typing import FeedMessage, WidgetWrite
from mdp_cache.records import ReferenceData
from mdp_cache.reference import daily_bar_from_agg
from mdp_core.calendar import MarketCalendar
from mdp_core.clock import ET, to_ns
from mdp_core.events import MarketEvent
from mdp_sim import Market, ScenarioConfig
from mdp_wds.deltas import BoardTracker
from mdp_wds.protocol import delta_frame, update_frame

DAY = date(2026, 11, 23)
_EVENT = msgspec.json.Decoder(MarketEvent)


@dataclasses.dataclass
class _Capture(replay.OfflineResult):
    """The offline store, also keeping every board publication in order."""

    boards: list[FeedMessage] = dataclasses.field(default_factory=list)

    def record(self, writes: Iterable[WidgetWrite]) -> list[FeedMessage]:
        sent = super().record(writes)
        self.boards += [m for m in sent if m.name.startswith("scanner:")]
        return sent


def main() -> None:
    """Simulate, replay, frame the boards both ways and print bytes per second."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=300)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--start", default="09:45")
    args = parser.parse_args()
    start = time.fromisoformat(args.start)
    market = Market(
        ScenarioConfig(
            seed=7, symbols=args.symbols, trading_day=DAY, start=start, quotes=False,
            news_per_hour=0,
        )
    )  # fmt: skip
    until = to_ns(datetime.combine(DAY, start, tzinfo=ET)) + int(args.minutes * 60e9)
    update = market.advance(until)
    events = [_EVENT.decode(msgspec.json.encode(e)) for e in update.events]

    def reference(symbol: str, day: date) -> ReferenceData | None:
        rows = market.daily_bars(symbol, day - timedelta(days=45), day - timedelta(days=1))
        bars = [bar for row in rows if (bar := daily_bar_from_agg(row)) is not None]
        return ReferenceData.from_bars(symbol, day, bars, None) if bars else None

    original = replay.OfflineResult
    replay.OfflineResult = _Capture  # type: ignore[misc]  # a benchmark's hook into the runner
    try:
        result = replay.run_offline(
            events, [TopStocksAnalyzer(MarketCalendar())], reference=reference
        )
    finally:
        replay.OfflineResult = original  # type: ignore[misc]
    assert isinstance(result, _Capture)
    trackers: dict[str, BoardTracker] = {}
    whole = deltas = 0
    for message in result.boards:
        tracker = trackers.setdefault(message.name, BoardTracker("symbol"))
        delta = tracker.advance(message.payload)
        frame = update_frame(message.name, message.payload, seq=tracker.seq)
        whole += len(frame.data)
        sent = frame if delta is None else delta_frame(message.name, tracker.seq, delta)
        deltas += len(sent.data)
    seconds = args.minutes * 60
    print(
        f"{args.symbols} symbols, {args.minutes:g} min of market from {args.start} ET: "
        f"{len(result.boards)} board publications ({len(result.boards) / seconds:.1f}/s)"
    )
    print(f"  whole boards: {whole / seconds / 1000:8.1f} KB/s")
    print(f"  deltas:       {deltas / seconds / 1000:8.1f} KB/s  ({deltas / whole:.0%} of whole)")


if __name__ == "__main__":
    main()
