"""Micro-benchmark: scanner CPU per quote record, without Redis.

Every quote record the processors publish (``quote:{symbol}``) reaches every scanner analyzer
that consumes it, so the scanner's cost is proportional to the quote updates
(docs/performance.md). This measures it per analyzer: the leaderboard analyzer turns
``--symbols`` symbols' bars (the market of ``bench/flush.py``) into the quote records a
processor publishes, and the scanner's default analyzers apply and collect them in batches, as
:class:`mdp_scanner.scanner.Scanner` hands them over.

Prints figures; asserts nothing about speed.

Usage::

    uv run python bench/scanner.py [--symbols 5000] [--rounds 8] [--repeat 3]
"""

from __future__ import annotations

import time

from flush import DAY, market_rounds, report  # bench/, the script's own directory

from mdp_analyzers.typing import FeedMessage, published
from mdp_cache.ops import Accepted, PutMerged
from mdp_core.calendar import MarketCalendar
from mdp_scanner.__main__ import build_analyzers
from mdp_scanner.settings import ScannerSettings
from mdp_testing.conformance import at_ms

_BATCH = 500  # messages per scanner batch, about what a busy second's read returns


def _quote_rounds(symbols: int, rounds: int, seed: int) -> list[list[FeedMessage]]:
    """Each round's quote records, one per symbol, as the processor publishes them."""
    out = []
    for round_, analyzer, now_ns in market_rounds(symbols, rounds, seed):
        accepted = [
            Accepted(op.publish, op.payload, round_)
            for op in analyzer.collect(now_ns).state
            if isinstance(op, PutMerged) and op.publish
        ]
        out.append([FeedMessage(write.name, write.payload) for write in published(accepted)])
    return out


def measure(symbols: int, rounds: int, seed: int) -> dict[str, float]:
    """Microseconds per quote record of each analyzer, over ``rounds`` rounds after two."""
    quote_rounds = _quote_rounds(symbols, rounds + 2, seed)
    settings = ScannerSettings()
    analyzers = build_analyzers(settings.analyzers, MarketCalendar(), settings.analyzer_options())
    spent = dict.fromkeys((analyzer.name for analyzer in analyzers), 0.0)
    records = 0
    for round_, messages in enumerate(quote_rounds):
        now_ns = (at_ms(DAY, 10, 0) + (round_ + 1) * 1_000 + 700) * 1_000_000
        for first in range(0, len(messages), _BATCH):
            batch = messages[first : first + _BATCH]
            for analyzer in analyzers:
                t0 = time.perf_counter()
                analyzer.apply(batch, now_ns)
                analyzer.collect(now_ns)
                if round_ >= 2:
                    spent[analyzer.name] += time.perf_counter() - t0
        if round_ >= 2:
            records += len(messages)
    return {name: seconds / records * 1e6 for name, seconds in spent.items()}


def main() -> None:
    """Measure and print the fastest run."""
    report(measure, __doc__.splitlines()[0], "scanner CPU per quote record", 5_000)


if __name__ == "__main__":
    main()
