"""Lag percentiles and the event-time-to-wall-time map of ``mdp bench``.

The simulator stamps events with *simulated* time, which runs faster than the wall clock when
the market is paced by rate. Lag "from event time" therefore means: from the wall instant at
which the simulator emitted the event (what a real exchange feed would stamp) to the wall
instant it was seen downstream. :class:`EmissionMap` turns an event time into that emission
instant from the ``(last event time, wall ns)`` pairs the simulator records per emitted chunk.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["EmissionMap", "LagSummary", "longest_gap_ms", "p99_by_second", "percentile"]


def percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of already sorted values, nearest-rank; 0.0 when empty.

    Nearest rank (no interpolation) so a reported p99 is a lag that really happened.

    Raises:
        ValueError: if ``q`` is outside 0..1.
    """
    if not 0.0 <= q <= 1.0:
        msg = f"quantile must be within 0..1, was {q!r}"
        raise ValueError(msg)
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(q * len(ordered)))
    return float(ordered[rank - 1])


@dataclass(frozen=True, slots=True)
class LagSummary:
    """Count and p50/p90/p99/max of a set of lags, in milliseconds."""

    count: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, lags_ms: Sequence[float]) -> LagSummary:
        """Summarise ``lags_ms`` (any order)."""
        ordered = sorted(lags_ms)
        return cls(
            count=len(ordered),
            p50_ms=round(percentile(ordered, 0.50), 2),
            p90_ms=round(percentile(ordered, 0.90), 2),
            p99_ms=round(percentile(ordered, 0.99), 2),
            max_ms=round(ordered[-1], 2) if ordered else 0.0,
        )


def p99_by_second(
    timed_lags_ms: Iterable[tuple[int, float]], start_ns: int, end_ns: int
) -> list[float | None]:
    """The p99 of the lags received in each whole second from ``start_ns`` (None: none arrived).

    ``timed_lags_ms`` are ``(wall ns received, lag ms)``; those outside ``[start_ns,
    end_ns)`` are left out. A phase's p99 alone cannot tell a backlog in its first seconds
    from a tail spread over all of them: this can.
    """
    seconds = max(1, math.ceil((end_ns - start_ns) / 1e9))
    per: list[list[float]] = [[] for _ in range(seconds)]
    for wall_ns, lag_ms in timed_lags_ms:
        if start_ns <= wall_ns < end_ns:
            per[(wall_ns - start_ns) // 1_000_000_000].append(lag_ms)
    return [round(percentile(sorted(lags), 0.99), 2) if lags else None for lags in per]


class EmissionMap:
    """Maps a simulated event time (ms) to the wall instant (ns) the simulator emitted it.

    Args:
        points: ``(last event time ms of a chunk, wall ns the chunk was emitted)``, in emission
            order; event times never decrease along the stream.
        exact: ``(symbol, event time ms) -> wall ns`` of the events of the symbols the clients
            follow, as the simulator emitted them. Many events share one time (a second's bars
            all end on it) and leave over a spread of chunks, slowly when the rate is low: the
            first chunk that reached the time would date every later one too early.
    """

    def __init__(
        self,
        points: Sequence[tuple[int, int]],
        exact: Mapping[tuple[str, int], int] | None = None,
    ) -> None:
        self._event_ms = [event_ms for event_ms, _ in points]
        self._wall_ns = [wall_ns for _, wall_ns in points]
        self._exact = dict(exact or {})

    def __len__(self) -> int:
        return len(self._event_ms)

    def wall_ns(self, event_ms: int) -> int | None:
        """The emission instant of the first chunk that reached ``event_ms``; None if none did."""
        index = bisect_left(self._event_ms, event_ms)
        if index >= len(self._event_ms):
            return None
        return self._wall_ns[index]

    def lag_ms(self, event_ms: int, seen_wall_ns: int, symbol: str | None = None) -> float | None:
        """Milliseconds from the event's emission to ``seen_wall_ns``; None if not mapped.

        The emission of ``symbol``'s own event at ``event_ms`` when the simulator noted it,
        else that of the first chunk that reached ``event_ms``.
        """
        emitted = None if symbol is None else self._exact.get((symbol, event_ms))
        if emitted is None:
            emitted = self.wall_ns(event_ms)
        if emitted is None:
            return None
        return (seen_wall_ns - emitted) / 1e6


def longest_gap_ms(arrivals: Iterable[Sequence[int]], start_ns: int, end_ns: int) -> float | None:
    """The longest stretch of ``[start_ns, end_ns)`` in which one stream saw no update, in ms.

    Each element of ``arrivals`` is one stream's arrival instants (wall ns, ascending): one
    client's updates of one board. The window's edges count as bounds, so a stream that went
    silent before the end is measured up to the end. None when there is no stream.
    """
    longest: float | None = None
    for stream in arrivals:
        previous = start_ns
        gap = 0
        for instant in stream:
            if instant < start_ns:
                continue
            if instant >= end_ns:
                break
            gap = max(gap, instant - previous)
            previous = instant
        gap = max(gap, end_ns - previous)
        longest = gap / 1e6 if longest is None else max(longest, gap / 1e6)
    return None if longest is None else round(longest, 1)
