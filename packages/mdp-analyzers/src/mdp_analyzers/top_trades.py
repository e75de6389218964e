"""Top trades: the largest recent trades across the market and per-symbol trade statistics.

Per symbol the analyzer keeps its last 1,000 trades in a ring buffer with running totals, so a
trade costs O(1) (amortised) whatever the window size: the total volume and count move by one
add and one subtract, the maximum size comes from a monotonic deque, the time span from the
oldest and newest entries. The earlier implementation rebuilt every symbol's statistics from
Redis lists every five seconds, which took longer than five seconds once the lists filled.

Market-wide, trades are bucketed by second, each bucket keeping only its ``top_n`` largest
(by dollar value); the board over the window is the best of the buckets still inside it.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Sequence
from typing import ClassVar, Final

import msgspec

from mdp_analyzers.typing import Output, WidgetWrite
from mdp_cache.keys import FEED_TOP_TRADES, FEED_TRADE_STATS
from mdp_core.clock import NS_PER_SECOND
from mdp_core.events import MarketEvent, Trade

__all__ = ["DEFAULT_WINDOW_TRADES", "SymbolTradeStats", "TopTrade", "TopTradesAnalyzer"]

DEFAULT_WINDOW_TRADES: Final = 1_000
_NS_PER_MS: Final = 1_000_000
_ENCODER: Final = msgspec.json.Encoder()


class SymbolTradeStats(msgspec.Struct, frozen=True, kw_only=True):
    """Statistics over a symbol's last ``window`` trades (the FEED_TRADE_STATS payload)."""

    symbol: str
    as_of_ms: int
    window: int
    trade_count: int
    total_volume: int
    avg_size: float
    max_size: int
    time_span_ms: int
    latest_price: float
    latest_size: int
    latest_exchange: int
    latest_timestamp_ms: int


class TopTrade(msgspec.Struct, frozen=True, kw_only=True):
    """One trade on the market-wide board."""

    symbol: str
    price: float
    size: int
    value: float
    exchange: int
    timestamp_ms: int
    trade_id: str


class _TopTrades(msgspec.Struct, frozen=True):
    as_of_ms: int
    window_s: int
    trades: list[TopTrade]


class _Window:
    """Ring buffer of one symbol's last trades, with O(1) running statistics."""

    __slots__ = ("capacity", "latest", "max_sizes", "ring", "seq", "total")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        #: (seq, size, timestamp_ms) oldest first.
        self.ring: deque[tuple[int, int, int]] = deque()
        #: (seq, size) with strictly decreasing sizes: the front is the window maximum.
        self.max_sizes: deque[tuple[int, int]] = deque()
        self.total = 0
        self.seq = 0
        self.latest: Trade | None = None

    def add(self, trade: Trade) -> None:
        self.seq += 1
        size = trade.size
        self.ring.append((self.seq, size, trade.timestamp_ms))
        self.total += size
        while self.max_sizes and self.max_sizes[-1][1] <= size:
            self.max_sizes.pop()
        self.max_sizes.append((self.seq, size))
        if len(self.ring) > self.capacity:
            old_seq, old_size, _ = self.ring.popleft()
            self.total -= old_size
            if self.max_sizes[0][0] == old_seq:
                self.max_sizes.popleft()
        if self.latest is None or trade.timestamp_ms >= self.latest.timestamp_ms:
            self.latest = trade

    def stats(self, symbol: str, as_of_ms: int) -> SymbolTradeStats:
        count = len(self.ring)
        stamps_first = self.ring[0][2]
        stamps_last = self.ring[-1][2]
        latest = self.latest
        assert latest is not None
        return SymbolTradeStats(
            symbol=symbol,
            as_of_ms=as_of_ms,
            window=self.capacity,
            trade_count=count,
            total_volume=self.total,
            avg_size=round(self.total / count, 2),
            max_size=self.max_sizes[0][1],
            time_span_ms=abs(stamps_last - stamps_first),
            latest_price=latest.price,
            latest_size=latest.size,
            latest_exchange=latest.exchange,
            latest_timestamp_ms=latest.timestamp_ms,
        )


class TopTradesAnalyzer:
    """Largest recent trades (market-wide) and per-symbol sliding-window trade statistics.

    Args:
        window_trades: Trades per symbol in the statistics window.
        top_n: Trades on the market-wide board.
        window_s: How far back (event time) the market-wide board looks.
        publish_interval_s: Minimum seconds between two publications of the board and of a
            symbol's statistics (both are coalesced in between).
    """

    name: ClassVar[str] = "top_trades"
    consumes: ClassVar[frozenset[str]] = frozenset({"T"})

    def __init__(
        self,
        *,
        window_trades: int = DEFAULT_WINDOW_TRADES,
        top_n: int = 50,
        window_s: int = 300,
        publish_interval_s: float = 1.0,
    ) -> None:
        self.window_trades = window_trades
        self.top_n = top_n
        self.window_s = window_s
        self._interval_ns = int(publish_interval_s * NS_PER_SECOND)
        self._windows: dict[str, _Window] = {}
        #: second -> min-heap of (value, seq, trade) keeping that second's top_n.
        self._buckets: dict[int, list[tuple[float, int, Trade]]] = {}
        self._seq = 0
        self._changed: set[str] = set()
        self._board_changed = False
        self._next_publish_ns = 0
        self.trades = 0
        self.ignored_events = 0

    def apply(self, inputs: Sequence[MarketEvent], now_ns: int) -> None:
        """Fold trades into the per-symbol windows and the per-second buckets."""
        del now_ns
        windows = self._windows
        buckets = self._buckets
        top_n = self.top_n
        for event in inputs:
            if type(event) is not Trade:
                self.ignored_events += 1
                continue
            assert isinstance(event, Trade)
            self.trades += 1
            window = windows.get(event.symbol)
            if window is None:
                window = windows[event.symbol] = _Window(self.window_trades)
            window.add(event)
            self._changed.add(event.symbol)
            value = event.price * event.size
            bucket = buckets.setdefault(event.timestamp_ms // 1000, [])
            self._seq += 1
            if len(bucket) < top_n:
                heapq.heappush(bucket, (value, self._seq, event))
                self._board_changed = True
            elif value > bucket[0][0]:
                heapq.heapreplace(bucket, (value, self._seq, event))
                self._board_changed = True

    def collect(self, now_ns: int) -> Output:
        """Statistics of changed symbols and the market-wide board, at most once an interval."""
        if now_ns < self._next_publish_ns:
            return Output()
        self._next_publish_ns = now_ns + self._interval_ns
        as_of_ms = now_ns // _NS_PER_MS
        widgets = [
            WidgetWrite(
                FEED_TRADE_STATS,
                FEED_TRADE_STATS.name(symbol=symbol),
                _ENCODER.encode(self._windows[symbol].stats(symbol, as_of_ms)),
            )
            for symbol in sorted(self._changed)
        ]
        self._changed = set()
        horizon_s = as_of_ms // 1000 - self.window_s
        expired = [second for second in self._buckets if second < horizon_s]
        for second in expired:
            del self._buckets[second]
        if self._board_changed or expired:
            self._board_changed = False
            widgets.append(
                WidgetWrite(
                    FEED_TOP_TRADES,
                    FEED_TOP_TRADES.name(),
                    _ENCODER.encode(_TopTrades(as_of_ms, self.window_s, self.top_trades())),
                )
            )
        return Output(widgets=widgets)

    def top_trades(self) -> list[TopTrade]:
        """The largest trades still inside the window, largest first."""
        best = heapq.nlargest(
            self.top_n,
            (item for bucket in self._buckets.values() for item in bucket),
            key=lambda item: (item[0], -item[1]),
        )
        return [
            TopTrade(
                symbol=trade.symbol,
                price=trade.price,
                size=trade.size,
                value=round(value, 2),
                exchange=trade.exchange,
                timestamp_ms=trade.timestamp_ms,
                trade_id=trade.trade_id,
            )
            for value, _, trade in best
        ]

    def stats(self, symbol: str, as_of_ms: int) -> SymbolTradeStats | None:
        """The current statistics of ``symbol`` (None if it never traded)."""
        window = self._windows.get(symbol)
        return None if window is None else window.stats(symbol, as_of_ms)
