"""Micro-benchmark: processor CPU per changed row of a leaderboard flush, without Redis.

A flush at 10,000 symbols writes about one row per bar, so its Python cost per row decides how
long a second's burst of bars takes to drain (docs/performance.md). This measures that cost in
three parts, for ``--symbols`` symbols each moving once per round:

- collect: the analyzer's rows (row, figures text, version, payload);
- merge: the figures-merge script calls queued and packed as the MDC pipeline sends them;
- quotes: the quote records of the stored rows, as the WDC pipeline packs them.

Nothing is sent: the pipelines are packed by a connection of :func:`mdp_cache.client.
create_redis`, the one the processor uses. Prints figures; asserts nothing about speed.

Usage::

    uv run python bench/flush.py [--symbols 10000] [--rounds 8] [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable, Iterator
from datetime import date

from mdp_analyzers.leaderboard import LeaderboardAnalyzer
from mdp_analyzers.typing import published
from mdp_cache.client import create_redis
from mdp_cache.ops import Accepted, PutMerged
from mdp_cache.records import DailyBar, ReferenceData
from mdp_cache.state import RedisState, _sort_ops
from mdp_cache.widgets import _script_calls, with_trace_context
from mdp_core.events import SecondAggregate
from mdp_testing.conformance import at_ms

DAY = date(2026, 3, 4)
PREVIOUS = DailyBar(day=date(2026, 3, 3), open=10, high=11, low=9, close=10, volume=10**5)


def market_rounds(
    symbols: int, rounds: int, seed: int
) -> Iterator[tuple[int, LeaderboardAnalyzer, int]]:
    """Each round: the leaderboard analyzer that folded one new bar per symbol, and a flush time.

    Reference data (previous day, average volume, float) is given after the first round's
    bars: the analyzer only takes it for the day and symbols it already knows.
    """
    names = [f"S{i:05d}" for i in range(symbols)]
    rng = random.Random(seed)
    analyzer = LeaderboardAnalyzer()
    price = dict.fromkeys(names, 10.0)
    volume = dict.fromkeys(names, 0)
    start = at_ms(DAY, 10, 0)
    for round_ in range(rounds):
        bars = []
        for name in names:
            close = price[name] = round(price[name] * (1 + rng.gauss(0, 0.002)), 4)
            volume[name] += 100
            bars.append(
                SecondAggregate(
                    symbol=name, volume=100, accumulated_volume=volume[name], vwap=close,
                    official_open=10.0, open=close, high=round(close * 1.001, 4),
                    low=round(close * 0.999, 4), close=close,
                    start_ms=start + round_ * 1_000, end_ms=start + (round_ + 1) * 1_000,
                )
            )  # fmt: skip
        analyzer.apply(bars, 0)
        if round_ == 0:
            for name in names:
                analyzer.provide_reference(
                    ReferenceData(
                        symbol=name, trading_day=DAY, prev_day=PREVIOUS, avg_volume=1e6,
                        free_float=10**8,
                    )
                )  # fmt: skip
        yield round_, analyzer, (start + (round_ + 1) * 1_000 + 500) * 1_000_000


def measure(symbols: int, rounds: int, seed: int) -> dict[str, float]:
    """Microseconds per row of each part, over ``rounds`` rounds after two of warm-up."""
    redis = create_redis("redis://127.0.0.1:6379/15")  # never connected: packing only
    state = RedisState(redis)
    state._figures_sha = "0" * 40
    connection = redis.connection_pool.make_connection()
    spent = {"collect": 0.0, "merge": 0.0, "quotes": 0.0}
    rows = 0
    for round_, analyzer, now_ns in market_rounds(symbols, rounds + 2, seed):
        t0 = time.perf_counter()
        ops = analyzer.collect(now_ns).state
        t1 = time.perf_counter()
        pipe = redis.pipeline(transaction=True)
        _, merged, _ = _sort_ops(pipe, ops)
        state._queue_merged(pipe, merged)
        connection.pack_commands([command[0] for command in pipe.command_stack])
        t2 = time.perf_counter()
        accepted = [
            Accepted(op.publish, op.payload, round_)
            for op in ops
            if isinstance(op, PutMerged) and op.publish
        ]
        calls = _script_calls([], with_trace_context(published(accepted)))
        connection.pack_commands(
            [("EVALSHA", "0" * 40, call.numkeys, *call.args) for call in calls]
        )
        t3 = time.perf_counter()
        if round_ >= 2:
            spent["collect"] += t1 - t0
            spent["merge"] += t2 - t1
            spent["quotes"] += t3 - t2
            rows += len(ops)
    return {part: seconds / rows * 1e6 for part, seconds in spent.items()}


def report(
    measure_once: Callable[[int, int, int], dict[str, float]],
    description: str,
    what: str,
    symbols: int,
) -> None:
    """Parse the options, measure ``--repeat`` runs, print the fastest (µs per part, total)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--symbols", type=int, default=symbols)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3, help="runs; the fastest is printed")
    args = parser.parse_args()
    runs = [measure_once(args.symbols, args.rounds, seed) for seed in range(args.repeat)]
    best = min(runs, key=lambda figures: sum(figures.values()))
    width = max(len(part) for part in [*best, "total"])
    print(f"{what}, {args.symbols:,} symbols (fastest of {args.repeat} runs)")
    for part, micros in best.items():
        print(f"  {part:{width}} {micros:6.2f} us")
    print(f"  {'total':{width}} {sum(best.values()):6.2f} us")


def main() -> None:
    """Measure and print the fastest run."""
    report(measure, __doc__.splitlines()[0], "flush CPU per changed row", 10_000)


if __name__ == "__main__":
    main()
