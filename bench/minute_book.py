"""Micro-benchmark: the chart's minute book, CPU per second bar, without Redis.

The router folds every second bar (``A``) of every symbol into :class:`MinuteBook` and takes
the changed minute bars at each flush (``bars:{symbol}``). This measures fold + take per second
bar over ``--symbols`` symbols and ``--seconds`` seconds, flushing every ``--batch`` bars, for
three feeds: day volumes that run unbroken (the verified run grows by one second at a time),
the same seconds with neighbours swapped (gaps that close a second later), and day volumes
that prove nothing (``av`` constant: every bar is built from all held seconds, unverified).

Prints figures; asserts nothing about speed.

Usage::

    uv run python bench/minute_book.py [--symbols 1000] [--seconds 120] [--repeat 5]
"""

from __future__ import annotations

import argparse
import time
from datetime import date

from mdp_analyzers.minute_bars import MinuteBook
from mdp_core.events import SecondAggregate
from mdp_testing.conformance import aggregate, at_ms

_DAY = date(2026, 12, 2)


def _feed(symbols: int, seconds: int, *, unbroken: bool) -> list[SecondAggregate]:
    start = at_ms(_DAY, 9, 31)
    names = [f"S{index:05d}" for index in range(symbols)]
    day_volume = dict.fromkeys(names, 0)
    events = []
    for second in range(seconds):
        for name in names:
            volume = 10 + second % 7
            day_volume[name] += volume
            event = aggregate(
                name,
                start + (second + 1) * 1_000,
                close=3.0 + second % 5 / 100,
                volume=volume,
                accumulated_volume=day_volume[name] if unbroken else 1_000,
            )
            assert isinstance(event, SecondAggregate)
            events.append(event)
    return events


def _swapped(events: list[SecondAggregate], symbols: int) -> list[SecondAggregate]:
    """Each pair of consecutive seconds of a symbol delivered in the opposite order."""
    out = list(events)
    for first in range(0, len(out) - 2 * symbols + 1, 2 * symbols):
        block = out[first : first + 2 * symbols]
        out[first : first + 2 * symbols] = block[symbols:] + block[:symbols]
    return out


def measure(events: list[SecondAggregate], batch: int, repeat: int) -> float:
    """Microseconds per second bar, fold + take, the best of ``repeat`` runs."""
    best = float("inf")
    for _ in range(repeat):
        book = MinuteBook()
        t0 = time.perf_counter()
        for first in range(0, len(events), batch):
            for event in events[first : first + batch]:
                book.fold(event)
            book.take()
        best = min(best, time.perf_counter() - t0)
    return best / len(events) * 1e6


def main() -> None:
    """Print the three feeds' figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=1_000)
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    unbroken = _feed(args.symbols, args.seconds, unbroken=True)
    feeds = {
        "unbroken day volumes, in order": unbroken,
        "unbroken, neighbours swapped": _swapped(unbroken, args.symbols),
        "day volumes proving nothing": _feed(args.symbols, args.seconds, unbroken=False),
    }
    print(f"{args.symbols} symbols x {args.seconds} s, a take every {args.batch} bars")
    for label, events in feeds.items():
        print(f"  {label:32s} {measure(events, args.batch, args.repeat):6.2f} µs per second bar")


if __name__ == "__main__":
    main()
