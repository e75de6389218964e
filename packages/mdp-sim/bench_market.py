"""How fast the synthetic market generates events: ``take(100_000)`` in events per second.

Not a test (timings never assert); run ``uv run python packages/mdp-sim/bench_market.py`` and read
the figure. The downstream benchmarks want at least 250,000 events/s from the generator.
"""

from __future__ import annotations

import time
from datetime import date
from datetime import time as clock_time

from mdp_sim.market import Market
from mdp_sim.scenario import ScenarioConfig

EVENTS = 100_000


def _rate(symbols: int, start: clock_time, rounds: int = 3) -> tuple[float, float]:
    config = ScenarioConfig(seed=7, symbols=symbols, trading_day=date(2025, 3, 3), start=start)
    begun = time.perf_counter()
    market = Market(config)
    built = time.perf_counter() - begun
    best = 0.0
    for _ in range(rounds):
        begun = time.perf_counter()
        update = market.take(EVENTS)
        elapsed = time.perf_counter() - begun
        best = max(best, len(update.events) / elapsed)
    return built, best


def main() -> None:
    """Print build time and take() throughput for a few universe sizes and times of day."""
    for symbols, start in (
        (300, clock_time(9, 30)),
        (300, clock_time(11, 0)),
        (10_000, clock_time(9, 45)),
    ):
        built, rate = _rate(symbols, start)
        print(
            f"symbols={symbols:>6} start={start:%H:%M} build={built * 1000:7.1f} ms "
            f"take({EVENTS:_})={rate:>10,.0f} events/s"
        )


if __name__ == "__main__":
    main()
