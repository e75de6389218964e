"""Top trades: the largest recent trades across the market and per-symbol trade statistics.

Trades of one symbol reach several processor replicas, each seeing part of them, so neither the
per-symbol windows nor the market-wide board can live in one process. The analyzer therefore
keeps nothing but what it has not written yet, and describes the shared state as operations:

* per symbol, :class:`~mdp_analyzers.state.AppendTrades` into one window of the last 1,000
  trades, kept by the backend with running figures (total, count, maximum through a monotonic
  deque, oldest/newest entries, latest trade), so one trade costs O(1) whatever the window, and
  de-duplicated by trade identity, so a trade delivered twice is counted once. (The earlier
  implementation rebuilt every symbol's statistics from Redis lists every five seconds, which
  took longer than five seconds once the lists filled.)
* market-wide, trades are bucketed by second of their timestamp; each replica offers the
  trades that enter its own top ``top_n`` of a second to the shared bucket
  (:class:`~mdp_analyzers.state.KeepTop`), which keeps the ``top_n`` largest of all replicas'
  offers. The board is the best ``top_n`` of the buckets inside the window, ranked by the
  exact dollar value (price x size; shown rounded to cents).

Publishing is composition (:class:`~mdp_analyzers.typing.Composer`): about once a second the
replica holding the lease reads the windows that changed and the union of the buckets, and
writes the statistics (versioned by the window's sequence number, so a late write never
replaces a newer document) and the board.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import ClassVar, Final

import msgspec

from mdp_analyzers.state import (
    AppendTrades,
    KeepTop,
    RankedMember,
    Read,
    StateOp,
    UnionTopRead,
    WindowStatsRead,
    WindowTrade,
    decode_window_stats,
)
from mdp_analyzers.typing import Output, WidgetWrite
from mdp_cache.keys import FEED_TOP_TRADES, FEED_TRADE_STATS, KEY_TT_BUCKET, KEY_TT_WINDOW
from mdp_core.clock import NS_PER_SECOND
from mdp_core.events import MarketEvent, Trade

__all__ = [
    "DEFAULT_WINDOW_TRADES",
    "SymbolTradeStats",
    "TopTrade",
    "TopTradesAnalyzer",
    "trade_identity",
]

DEFAULT_WINDOW_TRADES: Final = 1_000
_NS_PER_MS: Final = 1_000_000
_ENCODER: Final = msgspec.json.Encoder()
#: Seconds a bucket outlives the board window (late trades, clock differences).
_BUCKET_GRACE_SECONDS: Final = 60
#: Seconds ahead of ``now`` the board still looks (trade clocks slightly ahead of ours).
_AHEAD_SECONDS: Final = 5


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


class TopTrade(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One trade on the market-wide board (its JSON is also its member in a bucket).

    ``sequence`` (the ticker's ``q``) is present only for a trade with an empty id: it is
    what tells two such trades apart when they agree on everything else, so the board keeps
    both, as the statistics do. A trade with an id keeps the member it always had.
    """

    symbol: str
    price: float
    size: int
    value: float
    exchange: int
    timestamp_ms: int
    trade_id: str
    sequence: int | None = None


class _TopTrades(msgspec.Struct, frozen=True):
    as_of_ms: int
    window_s: int  # the published document's key (WDC, clients): not renamed
    trades: list[msgspec.Raw]


class _Bucket:
    """One second's largest trades seen by this replica: a min-heap and its members."""

    __slots__ = ("heap", "members")

    def __init__(self) -> None:
        self.heap: list[tuple[float, bytes]] = []
        self.members: set[bytes] = set()


def trade_identity(trade: Trade) -> str:
    """What makes a trade unique in its symbol's window: exchange, trade id and time.

    The time is part of it because ids repeat across days, and a symbol's window may span
    days when it trades rarely. The wire requires an id but not that it be non-empty: without
    one, the symbol's sequence number (``q``: unique per ticker within a day, hence with the
    time) stands in, so a redelivered or re-flushed trade is still counted once. A trade with
    neither has no identity (empty) and is counted each time it arrives.
    """
    if trade.trade_id:
        return f"{trade.exchange}:{trade.trade_id}:{trade.timestamp_ms}"
    if trade.sequence is not None:
        # "q" never begins an identity with an id, which begins with the exchange's number.
        return f"q{trade.sequence}:{trade.timestamp_ms}"
    return ""


class TopTradesAnalyzer:
    """Largest recent trades (market-wide) and per-symbol sliding-window trade statistics.

    Args:
        window_trades: Trades per symbol in the statistics window.
        top_n: Trades on the market-wide board.
        window_seconds: How far back (event time) the market-wide board looks.
        publish_interval_seconds: Seconds between two compositions (statistics of the symbols that
            traded since, and the board when it changed).
        stats_per_compose: Most symbols whose statistics one composition publishes; the
            rest follow on the next.
    """

    name: ClassVar[str] = "top_trades"
    consumes: ClassVar[frozenset[str]] = frozenset({"T"})

    def __init__(
        self,
        *,
        window_trades: int = DEFAULT_WINDOW_TRADES,
        top_n: int = 50,
        window_seconds: int = 300,
        publish_interval_seconds: float = 1.0,
        stats_per_compose: int = 10_000,
    ) -> None:
        for label, value in (
            ("window_trades", window_trades),
            ("top_n", top_n),
            ("window_seconds", window_seconds),
            ("stats_per_compose", stats_per_compose),
        ):
            if value < 1:
                msg = f"{label} must be at least 1; it was {value}"
                raise ValueError(msg)
        self.window_trades = window_trades
        self.top_n = top_n
        self.window_seconds = window_seconds
        self.stats_per_compose = stats_per_compose
        self.compose_interval_ns = int(publish_interval_seconds * NS_PER_SECOND)
        self._window_ttl = KEY_TT_WINDOW.ttl or 86_400
        #: Trades not yet written, by symbol, in arrival order.
        self._pending: dict[str, list[WindowTrade]] = {}
        #: second -> this replica's top_n trades of that second.
        self._buckets: dict[int, _Bucket] = {}
        #: second -> members (with values) that entered the local top since the last collect.
        self._offers: dict[int, dict[bytes, float]] = {}
        self._last_board: bytes | None = None
        self.trades = 0
        self.ignored_events = 0

    def apply(self, inputs: Sequence[MarketEvent], now_ns: int) -> None:
        """Queue trades for their windows and offer the large ones to their second's bucket."""
        del now_ns
        pending = self._pending
        for event in inputs:
            if type(event) is not Trade:
                self.ignored_events += 1
                continue
            assert isinstance(event, Trade)
            self.trades += 1
            entry = WindowTrade(
                trade_identity(event), event.size, event.timestamp_ms, event.price, event.exchange
            )
            queued = pending.get(event.symbol)
            if queued is None:
                pending[event.symbol] = [entry]
            else:
                queued.append(entry)
            self._offer(event)

    def _offer(self, trade: Trade) -> None:
        """Keep this replica's top ``top_n`` of the trade's second; offer what enters it.

        Order is (price x size, member) throughout, the order the shared buckets cut by, so
        the union of every replica's offers holds the global top of each second, ties
        included. The order is the unrounded value: the value shown is rounded to cents, and
        ranking by it would let a trade worth 1,000.009 outrank one worth 1,000.01.
        """
        score = trade.price * trade.size
        second = trade.timestamp_ms // 1000
        bucket = self._buckets.get(second)
        if bucket is None:
            bucket = self._buckets[second] = _Bucket()
        heap = bucket.heap
        full = len(heap) >= self.top_n
        if full and score < heap[0][0]:
            return  # the common case, decided before encoding anything
        member = _ENCODER.encode(
            TopTrade(
                symbol=trade.symbol,
                price=trade.price,
                size=trade.size,
                value=round(score, 2),
                exchange=trade.exchange,
                timestamp_ms=trade.timestamp_ms,
                trade_id=trade.trade_id,
                sequence=None if trade.trade_id else trade.sequence,
            )
        )
        if member in bucket.members or (full and (score, member) <= heap[0]):
            return
        if full:
            _, dropped = heapq.heapreplace(heap, (score, member))
            bucket.members.discard(dropped)
        else:
            heapq.heappush(heap, (score, member))
        bucket.members.add(member)
        self._offers.setdefault(second, {})[member] = score

    def collect(self, now_ns: int) -> Output:
        """The window appends and bucket offers since the last call (no widgets: see compose)."""
        ops: list[StateOp] = [
            AppendTrades(symbol, tuple(trades), self.window_trades, self._window_ttl)
            for symbol, trades in sorted(self._pending.items())
        ]
        self._pending = {}
        horizon_seconds = now_ns // NS_PER_SECOND - self.window_seconds
        ttl = self.window_seconds + _BUCKET_GRACE_SECONDS
        for second, offers in sorted(self._offers.items()):
            if second >= horizon_seconds:
                ops.append(
                    KeepTop(
                        KEY_TT_BUCKET.name(second=second),
                        tuple(sorted(offers.items())),
                        self.top_n,
                        ttl,
                    )
                )
        self._offers = {}
        for second in [second for second in self._buckets if second < horizon_seconds]:
            del self._buckets[second]
        return Output(state=ops)

    # --- composition (Composer protocol) ------------------------------------------------

    def reads(self, now_ns: int) -> Sequence[Read]:
        """The windows that changed, and the union of the buckets inside the board window."""
        now_seconds = now_ns // NS_PER_SECOND
        seconds = range(now_seconds - self.window_seconds, now_seconds + _AHEAD_SECONDS + 1)
        return [
            WindowStatsRead(self.stats_per_compose),
            UnionTopRead(tuple(KEY_TT_BUCKET.name(second=s) for s in seconds), self.top_n),
        ]

    def compose(
        self, now_ns: int, answers: Sequence[Sequence[RankedMember]]
    ) -> Sequence[WidgetWrite]:
        """Statistics documents of the changed symbols, then the board.

        The board is stored on every composition (so the newest composition's board is the
        stored one, even when an earlier write lost a tie at the same millisecond) and
        published only when its trades changed.
        """
        changed, board = answers
        as_of_ms = now_ns // _NS_PER_MS
        writes = [self._stats_write(row, as_of_ms) for row in changed]
        trades = [msgspec.Raw(row.payload) for row in board]
        listed = _ENCODER.encode(trades)
        fresh = listed != self._last_board
        self._last_board = listed
        document = _ENCODER.encode(_TopTrades(as_of_ms, self.window_seconds, trades))
        writes.append(
            WidgetWrite(
                FEED_TOP_TRADES, FEED_TOP_TRADES.name(), document, publish=fresh, version=as_of_ms
            )
        )
        return writes

    def _stats_write(self, row: RankedMember, as_of_ms: int) -> WidgetWrite:
        figures = decode_window_stats(row.payload)
        stats = SymbolTradeStats(
            symbol=row.member,
            as_of_ms=as_of_ms,
            window=self.window_trades,
            trade_count=figures.count,
            total_volume=figures.total_volume,
            avg_size=round(figures.total_volume / figures.count, 2) if figures.count else 0.0,
            max_size=figures.max_size,
            time_span_ms=abs(figures.last_timestamp_ms - figures.first_timestamp_ms),
            latest_price=figures.latest_price,
            latest_size=figures.latest_size,
            latest_exchange=figures.latest_exchange,
            latest_timestamp_ms=figures.latest_timestamp_ms,
        )
        return WidgetWrite(
            FEED_TRADE_STATS,
            FEED_TRADE_STATS.of(row.member),
            _ENCODER.encode(stats),
            version=figures.seq,
        )
