"""THE catalogue of every Redis key, pub/sub channel and TTL of the platform.

Two stores, kept apart on purpose:

* **MDC** (market data cache): internal analyzer state and reference data. Never reachable by
  clients. Every MDC key starts with ``mdp:``.
* **WDC** (widget data cache): what widgets show. A widget *feed* is one name that is both the
  snapshot key and the pub/sub channel, so a feed's key and channel can never disagree in type or
  shape. Only names that match a :class:`Feed` of this catalogue are readable through the WDS.
  Internal bookkeeping that must live next to the feeds in WDC uses :class:`Key` with
  ``store="wdc"`` and the ``mdp:`` prefix, which no feed pattern matches.

Hash tags (Redis Cluster): keys that one script or transaction touches together share a hash
tag, the part of the name between ``{`` and ``}`` that alone decides the cluster slot. A
template writes a tag with doubled braces, ``mdp:lb:{{{day}}}:rows`` -> ``mdp:lb:{2026-03-02}:rows``
(per trading day: every leaderboard hash and board of the day, merged by one script),
``mdp:tt:{{{symbol}}}:window`` (per symbol: its trade window, identities and figures),
``mdp:wv:{{{feed}}}`` (per feed: a version key tagged with the whole feed name lands in the slot
of that untagged name, so feed names, which clients see, need no tag). On a single Redis the
braces are only characters.

No other module spells a key, channel or TTL; a test greps the code for literals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final, Literal

__all__ = [
    "ALL_FEEDS",
    "ALL_KEYS",
    "FEED_ALERTS_HALTS",
    "FEED_ALERTS_HOD",
    "FEED_ALERTS_LOD",
    "FEED_ALERTS_NEWS",
    "FEED_ALERTS_VOLUME",
    "FEED_DAILY_RANGE",
    "FEED_HALTS",
    "FEED_LATEST_AGGREGATE",
    "FEED_LATEST_LULD",
    "FEED_LATEST_NBBO",
    "FEED_LATEST_TRADE",
    "FEED_MINUTE_BARS",
    "FEED_NEWS_LATEST",
    "FEED_NEWS_TICKER",
    "FEED_QUOTE",
    "FEED_SCANNER_TOP_GAINERS",
    "FEED_SCANNER_TOP_GAPPERS",
    "FEED_SCANNER_TOP_VOLUME",
    "FEED_TOP_TRADES",
    "FEED_TRADE_STATS",
    "INTERNAL_PREFIX",
    "KEY_BATCH_CLAIM",
    "KEY_COMPOSE_LEASE",
    "KEY_CONTROL",
    "KEY_HALTS",
    "KEY_HALT_VERSIONS",
    "KEY_HEARTBEAT",
    "KEY_LB_BOARD",
    "KEY_LB_FIGURES",
    "KEY_LB_ROWS",
    "KEY_LB_VERSIONS",
    "KEY_PARTITION_LEASE",
    "KEY_PROCESSOR_MEMBERS",
    "KEY_REF_AVG_VOLUME",
    "KEY_REF_BULK",
    "KEY_REF_FREE_FLOAT",
    "KEY_REF_LOCK",
    "KEY_REF_SNAPSHOT",
    "KEY_REF_TOD_VOLUME",
    "KEY_SCANNER_DEDUP",
    "KEY_SEEN_BATCH",
    "KEY_TT_BUCKET",
    "KEY_TT_DIRTY",
    "KEY_TT_IDS",
    "KEY_TT_STATS",
    "KEY_TT_UNION",
    "KEY_TT_WINDOW",
    "KEY_WDS_REVOKED",
    "KEY_WIDGET_VERSION",
    "MARKET_CLOSED_AT_MOST",
    "REF_NEGATIVE_TTL",
    "Feed",
    "Key",
    "feed_for",
]

#: Prefix of every internal key; no feed name starts with it, so the WDS can refuse it outright.
INTERNAL_PREFIX: Final = "mdp:"

MINUTE: Final = 60
HOUR: Final = 60 * MINUTE
DAY: Final = 24 * HOUR
MARKET_CLOSED_AT_MOST: Final = 5 * DAY
"""Longer than the market stays closed between two trading days' 20:00 and 04:00: a weekend
with a holiday (3 days 8 h), or an unscheduled closure of two weekdays next to one (4 days 8 h,
as in October 2012). State read until the next trading day begins must outlive that."""

_PARAM = re.compile(r"\{(\w+)\}")
#: A literal brace of a hash tag (doubled in templates) or a parameter.
_TEMPLATE_PART = re.compile(r"\{\{|\}\}|\{\w+\}")


def _glob_part(match: re.Match[str]) -> str:
    """A template part in a Redis glob: a doubled brace is one literal brace, a parameter ``*``."""
    part = match.group(0)
    return part[0] if part in {"{{", "}}"} else "*"


def _fill(template: str, params: dict[str, object]) -> str:
    """``template`` with its parameters filled in (a hot path: one call per key written).

    ``format_map`` takes the keyword dictionary as it is (``format(**params)`` copied it into
    a new one: half the cost of a name, at tens of thousands of names a second per worker).
    """
    try:
        return template.format_map(params)
    except KeyError:
        missing = set(_PARAM.findall(template)) - params.keys()
        raise KeyError(f"{template!r} needs {sorted(missing)}") from None


_REMEMBERED_SYMBOLS: Final = 1 << 16
"""Names remembered per template: a full US market (~12,000 symbols) with room to spare."""


class _SymbolNames:
    """One per-symbol template's names by symbol, made once each.

    A flush names the keys and feeds of every symbol it changed, thousands a second per worker
    at a full-market universe; a name made again costs a ``format_map`` (~0.3 µs). Past
    :data:`_REMEMBERED_SYMBOLS` symbols names are made each time, so memory stays bounded.
    """

    __slots__ = ("_by_symbol_alone", "_names", "_template")

    def __init__(self, template: str) -> None:
        self._template = template
        self._by_symbol_alone = set(_PARAM.findall(template)) == {"symbol"}
        self._names: dict[str, str] = {}

    def __call__(self, symbol: str) -> str:
        name = self._names.get(symbol)
        if name is None:
            if not self._by_symbol_alone:
                raise KeyError(f"{self._template!r} is not named by a symbol alone")
            name = _fill(self._template, {"symbol": symbol})
            if len(self._names) < _REMEMBERED_SYMBOLS:
                self._names[symbol] = name
        return name


@dataclass(frozen=True, slots=True, kw_only=True)
class Feed:
    """A client-facing widget feed in WDC: snapshot key and channel share one name.

    Attributes:
        template: The name with ``{params}``, e.g. ``quote:{symbol}``.
        shape: ``value`` (a JSON document replaced on each write), ``list`` (newest first,
            capped at ``max_len``) or ``series`` (a list, newest first, of at most ``max_len``
            elements, one per minute of the newest trading day; see :mod:`mdp_cache.series`).
        ttl: Seconds the snapshot lives after its last write (stale beats blank for widgets;
            every payload carries its own timestamp).
        owner: The component that writes it.
        payload: What one value (or one list element / published message) is.
        max_len: Cap of a ``list`` feed.
        order_by: For a ``list`` feed, the integer field of its JSON elements that orders it
            (newest first) whatever order the writes arrive in; None keeps arrival order.
        delta_key: For a ``value`` feed whose document has a ``rows`` list (a board), the row
            field that identifies a row: the WDS may then send the rows that changed instead of
            the whole document (``mdp_wds.deltas``).
    """

    template: str
    shape: Literal["value", "list", "series"]
    ttl: int
    owner: str
    payload: str
    max_len: int | None = None
    order_by: str | None = None
    delta_key: str | None = None
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _of: _SymbolNames = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_of", _SymbolNames(self.template))
        parts = _PARAM.split(self.template)
        # Odd positions are parameter names: each matches one non-empty segment without ':'.
        segment = r"[^:*?\[\]\s]+"
        regex = "".join(re.escape(p) if i % 2 == 0 else segment for i, p in enumerate(parts))
        # \Z, not $: $ also matches before a final newline ("quote:AAPL\n" was a quote name).
        object.__setattr__(self, "_regex", re.compile(f"^{regex}\\Z"))

    def name(self, **params: object) -> str:
        """The concrete feed name, e.g. ``FEED_QUOTE.name(symbol="AAPL")`` -> ``quote:AAPL``."""
        return _fill(self.template, params)

    def of(self, symbol: str) -> str:
        """``name(symbol=symbol)``, remembered (see :class:`_SymbolNames`).

        Raises:
            KeyError: the template has parameters other than ``{symbol}``, or none.
        """
        return self._of(symbol)

    @property
    def pattern(self) -> str:
        """The Redis glob matching every name of this feed (``quote:*``)."""
        return _PARAM.sub("*", self.template)

    @property
    def parametrized(self) -> bool:
        """Whether the feed has one name per parameter value (per symbol)."""
        return "{" in self.template

    def matches(self, name: str) -> bool:
        """Whether a concrete name belongs to this feed."""
        return self._regex.match(name) is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class Key:
    """An internal key (never client-readable).

    Attributes:
        template: The key with ``{params}``; always starts with ``mdp:``. A hash tag is written
            with doubled braces (``{{{symbol}}}``, ``{{halts}}``).
        store: ``mdc`` or ``wdc``.
        redis_type: The Redis data type stored there.
        ttl: Seconds to live, or ``None`` when the key is deleted explicitly.
        owner: The component that writes it.
        payload: What it holds.
    """

    template: str
    store: Literal["mdc", "wdc"]
    redis_type: Literal["string", "hash", "list", "zset", "set"]
    ttl: int | None
    owner: str
    payload: str
    _of: _SymbolNames = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.template.startswith(INTERNAL_PREFIX):
            raise ValueError(f"internal key {self.template!r} must start with 'mdp:'")
        object.__setattr__(self, "_of", _SymbolNames(self.template))

    def name(self, **params: object) -> str:
        """The concrete key."""
        return _fill(self.template, params)

    def of(self, symbol: str) -> str:
        """``name(symbol=symbol)``, remembered (see :class:`_SymbolNames`).

        Raises:
            KeyError: the template has parameters other than ``{symbol}``, or none.
        """
        return self._of(symbol)

    @property
    def pattern(self) -> str:
        """The Redis glob matching every key of this template (``mdp:tt:{*}:window``)."""
        return _TEMPLATE_PART.sub(_glob_part, self.template)


# --- WDC feeds ----------------------------------------------------------------------------------

FEED_SCANNER_TOP_GAINERS: Final = Feed(
    template="scanner:top_gainers",
    shape="value",
    ttl=4 * DAY,
    owner="processor (LeaderboardAnalyzer)",
    delta_key="symbol",
    payload="board document: {board, session, trading_day, as_of_ms, rows: [row...]}; rows ranked "
    "by % change vs the regular-session official open",
)
FEED_SCANNER_TOP_GAPPERS: Final = Feed(
    template="scanner:top_gappers",
    shape="value",
    ttl=4 * DAY,
    owner="processor (LeaderboardAnalyzer)",
    delta_key="symbol",
    payload="board document; rows ranked by % change vs the previous close",
)
FEED_SCANNER_TOP_VOLUME: Final = Feed(
    template="scanner:top_volume",
    shape="value",
    ttl=4 * DAY,
    owner="processor (LeaderboardAnalyzer)",
    delta_key="symbol",
    payload="board document; rows ranked by the day's accumulated volume",
)
FEED_QUOTE: Final = Feed(
    template="quote:{symbol}",
    shape="value",
    ttl=4 * DAY,
    owner="processor (LeaderboardAnalyzer)",
    payload="the symbol's quote record (same fields as a leaderboard row), published on change",
)
FEED_LATEST_AGGREGATE: Final = Feed(
    template="agg:{symbol}",
    shape="value",
    ttl=5 * MINUTE,
    owner="processor (MassiveDataAnalyzer)",
    payload="the latest A/AM aggregate of the symbol (wire structure)",
)
FEED_LATEST_TRADE: Final = Feed(
    template="trade:{symbol}",
    shape="value",
    ttl=HOUR,
    owner="processor (MassiveDataAnalyzer)",
    payload="the latest trade of the symbol (wire structure)",
)
FEED_LATEST_NBBO: Final = Feed(
    template="nbbo:{symbol}",
    shape="value",
    ttl=HOUR,
    owner="processor (MassiveDataAnalyzer)",
    payload="the latest NBBO quote of the symbol (wire structure)",
)
FEED_LATEST_LULD: Final = Feed(
    template="luld:{symbol}",
    shape="value",
    ttl=DAY,
    owner="processor (MassiveDataAnalyzer)",
    payload="the latest LULD bands of the symbol, with a `halted` flag",
)
FEED_MINUTE_BARS: Final = Feed(
    template="bars:{symbol}",
    shape="series",
    ttl=DAY,
    max_len=16 * 60,
    owner="processor (MassiveDataAnalyzer)",
    payload="today's one-minute bars of the symbol, newest first, one element per minute "
    "(04:00-20:00 ET: at most 960): {t: minute start ms, d: trading day YYYYMMDD, n: version, "
    "o, h, l, c, v}; the minute in progress is built from second bars and replaced by the "
    "minute bar; an update carries the one new or replaced element",
)
FEED_HALTS: Final = Feed(
    template="halts",
    shape="value",
    ttl=DAY,
    owner="processor (MassiveDataAnalyzer)",
    payload="{as_of_ms, symbols: {symbol: {halted_since_ms, high_limit, low_limit}}}",
)
FEED_TOP_TRADES: Final = Feed(
    template="trades:top",
    shape="value",
    ttl=HOUR,
    owner="processor (TopTradesAnalyzer)",
    payload="{as_of_ms, window_s, trades: [largest recent trades across the market]}",
)
FEED_TRADE_STATS: Final = Feed(
    template="trades:stats:{symbol}",
    shape="value",
    ttl=HOUR,
    owner="processor (TopTradesAnalyzer)",
    payload="sliding-window statistics of the symbol's last 1,000 trades",
)
FEED_NEWS_LATEST: Final = Feed(
    template="news:latest",
    shape="list",
    ttl=2 * DAY,
    max_len=1_000,
    owner="news processor (FinlightDataAnalyzer)",
    payload="one news item per element (article fields plus `tickers`), newest first by "
    "`published_ms`; an item already listed is not pushed again",
    order_by="published_ms",
)
FEED_NEWS_TICKER: Final = Feed(
    template="news:ticker:{symbol}",
    shape="list",
    ttl=7 * DAY,
    max_len=100,
    owner="news processor (FinlightDataAnalyzer)",
    payload="news items about the symbol, newest first by `published_ms`; an item already "
    "listed is not pushed again",
    order_by="published_ms",
)
FEED_DAILY_RANGE: Final = Feed(
    template="range:{symbol}",
    shape="value",
    ttl=4 * DAY,
    owner="scanner (DailyRangeAnalyzer)",
    payload="session highs and lows of the symbol for the current trading day",
)
FEED_ALERTS_HOD: Final = Feed(
    template="alerts:hod",
    shape="list",
    ttl=8 * HOUR,
    max_len=1_000,
    owner="scanner (DailyRangeAnalyzer)",
    payload="one new-high-of-day alert per element, newest first",
    order_by="as_of_ms",
)
FEED_ALERTS_LOD: Final = Feed(
    template="alerts:lod",
    shape="list",
    ttl=8 * HOUR,
    max_len=1_000,
    owner="scanner (DailyRangeAnalyzer)",
    payload="one new-low-of-day alert per element, newest first",
    order_by="as_of_ms",
)

FEED_ALERTS_VOLUME: Final = Feed(
    template="alerts:volume",
    shape="list",
    ttl=8 * HOUR,
    max_len=1_000,
    owner="scanner (UnusualVolumeAnalyzer)",
    payload="one unusual-volume alert per element (time-of-day RVol crossed a threshold), "
    "newest first",
    order_by="as_of_ms",
)
FEED_ALERTS_NEWS: Final = Feed(
    template="alerts:news",
    shape="list",
    ttl=8 * HOUR,
    max_len=1_000,
    owner="scanner (NewsMoversAnalyzer)",
    payload="one news-driven mover per element (price or RVol moved after news, headline "
    "attached), newest first",
    order_by="as_of_ms",
)
FEED_ALERTS_HALTS: Final = Feed(
    template="alerts:halts",
    shape="list",
    ttl=8 * HOUR,
    max_len=1_000,
    owner="scanner (HaltAlertsAnalyzer)",
    payload="one LULD halt or resume per element (limit band, last or resume price), newest first",
    order_by="as_of_ms",
)

# --- internal keys ------------------------------------------------------------------------------

KEY_REF_SNAPSHOT: Final = Key(
    template="mdp:ref:snapshot:{day}:{symbol}",
    store="mdc",
    redis_type="string",
    ttl=20 * HOUR,
    owner="MDC reference cache",
    payload="JSON daily reference of the symbol for trading day {day}: the previous completed "
    "day's bar and the 30-day average volume of completed days (or JSON null: nothing known). "
    "Namespaced by day, so a new trading day never reads yesterday's 'previous day'",
)
KEY_REF_AVG_VOLUME: Final = Key(
    template="mdp:ref:avg_volume:{day}:{symbol}",
    store="mdc",
    redis_type="string",
    ttl=20 * HOUR,
    owner="MDC reference cache",
    payload="reserved: the 30-day average daily volume travels inside KEY_REF_SNAPSHOT",
)
KEY_REF_TOD_VOLUME: Final = Key(
    template="mdp:ref:tod_volume:{day}:{symbol}",
    store="mdc",
    redis_type="string",
    ttl=20 * HOUR,
    owner="MDC reference cache",
    payload="JSON time-of-day volume profile of the symbol for trading day {day}: the average "
    "cumulative volume at the end of each 5-minute slot from 04:00 to 20:00 ET over the last N "
    "trading days, from 5-minute aggregates (or JSON null: no intraday history)",
)
KEY_REF_FREE_FLOAT: Final = Key(
    template="mdp:ref:free_float:{symbol}",
    store="mdc",
    redis_type="string",
    ttl=12 * HOUR,
    owner="MDC reference cache",
    payload="free float in shares, or JSON null (none known: negative entry)",
)

#: Life of a negative reference entry ("the source has nothing for this symbol"): long enough to
#: stop hammering the vendor, short enough that a newly listed symbol fills in the same day.
REF_NEGATIVE_TTL: Final = HOUR
KEY_REF_LOCK: Final = Key(
    template="mdp:ref:lock:{kind}:{symbol}",
    store="mdc",
    redis_type="string",
    ttl=30,
    owner="MDC reference cache",
    payload="stampede lock token while one process fetches the reference data",
)
KEY_REF_BULK: Final = Key(
    template="mdp:ref:bulk:{day}",
    store="mdc",
    redis_type="string",
    ttl=20 * HOUR,
    owner="MDC reference cache",
    payload="marker: the whole universe's reference of trading day {day} was loaded in bulk "
    "(grouped daily bars and free floats) and written as mdp:ref:snapshot/free_float keys; "
    "the value is the JSON array of the symbols it covered (other processes read them at once)",
)
KEY_SEEN_BATCH: Final = Key(
    template="mdp:seen:{consumer}:{batch}",
    store="mdc",
    redis_type="string",
    ttl=10 * MINUTE,
    owner="processor",
    payload="marks a queue batch as applied, so a redelivered message is not counted twice",
)
KEY_BATCH_CLAIM: Final = Key(
    template="mdp:claim:{consumer}:{batch}",
    store="mdc",
    redis_type="string",
    ttl=10 * MINUTE,
    owner="processor",
    payload="the instance that took a queue batch first (SET NX), so a copy of the batch "
    "published twice is applied once whichever worker or replica receives it",
)
KEY_HEARTBEAT: Final = Key(
    template="mdp:heartbeat:{component}:{instance}",
    store="mdc",
    redis_type="string",
    ttl=30,
    owner="every component",
    payload="JSON heartbeat: service, instance, version, status, key figures, ts",
)

KEY_CONTROL: Final = Key(
    template="mdp:control:{component}",
    store="mdc",
    redis_type="hash",
    ttl=None,
    owner="control plane",
    payload="runtime state the control plane asks of {component} (mdp_cache.control): field "
    "'*' for every instance or an instance id, value JSON {state, by, ts_ms}; the newest of an "
    "instance's field and '*' wins. Components poll it and report the state in their heartbeat",
)
KEY_LB_ROWS: Final = Key(
    template="mdp:lb:{{{day}}}:rows",
    store="mdc",
    redis_type="hash",
    ttl=MARKET_CLOSED_AT_MOST,
    owner="processor (LeaderboardAnalyzer)",
    payload="symbol -> encoded leaderboard row of trading day {day}; merged newer-wins by "
    "KEY_LB_VERSIONS across replicas; a new trading day uses new keys (no reset race); the "
    "day's keys outlive the longest market closure, as the boards read them until the next "
    "trading day's 04:00",
)
KEY_LB_VERSIONS: Final = Key(
    template="mdp:lb:{{{day}}}:versions",
    store="mdc",
    redis_type="hash",
    ttl=MARKET_CLOSED_AT_MOST,
    owner="processor (LeaderboardAnalyzer)",
    payload="symbol -> version of its row: the later of its bar's end and its halt news (ms), "
    "then an order among equal times (0-255: news newer than the bar first, by how close the "
    "bar is to it; else by how recent the news is), then reference completeness (0-7), packed "
    "as ((time_ms x 256 + order) x 8 + completeness)",
)
KEY_LB_FIGURES: Final = Key(
    template="mdp:lb:{{{day}}}:figures",
    store="mdc",
    redis_type="hash",
    ttl=MARKET_CLOSED_AT_MOST,
    owner="processor (LeaderboardAnalyzer)",
    payload="symbol -> 'sequence|current|figures': the lattice join (mdp_cache.lattice) of "
    "every session figure any replica offered for the symbol's row (and `rf`, the greatest "
    "reference completeness offered), whether the stored row holds all of it (1/0), and the "
    "count of rows stored (the quote record's version)",
)
KEY_LB_BOARD: Final = Key(
    template="mdp:lb:{{{day}}}:board:{board}",
    store="mdc",
    redis_type="zset",
    ttl=MARKET_CLOSED_AT_MOST,
    owner="processor (LeaderboardAnalyzer)",
    payload="member symbol, score the board metric of its current row (volume, gap %, gain %)",
)
KEY_COMPOSE_LEASE: Final = Key(
    template="mdp:lease:{analyzer}",
    store="mdc",
    redis_type="string",
    ttl=2,
    owner="processor",
    payload="instance id of the replica composing and publishing the documents analyzer "
    "{analyzer} builds from merged state (leaderboards, top trades, trade statistics); one "
    "lease per analyzer, so processors running different analyzers each compose theirs",
)
KEY_PROCESSOR_MEMBERS: Final = Key(
    template="mdp:members:{group}",
    store="mdc",
    redis_type="zset",
    ttl=12,
    owner="processor (mdp_cache.ownership)",
    payload="member: instance id of a live processor worker of consumer group {group}; score: "
    "when its announcement expires (ms, Redis clock). Partition owners are computed from it",
)
KEY_PARTITION_LEASE: Final = Key(
    template="mdp:partition:{group}:{partition}",
    store="mdc",
    redis_type="string",
    ttl=3,
    owner="processor (mdp_cache.ownership)",
    payload="instance id of the processor worker consuming MDQ partition {partition}: only "
    "the holder reads that partition's queues; renewed every second, released after the "
    "partition's last events were written",
)

KEY_HALTS: Final = Key(
    template="mdp:{{halts}}:rows",
    store="mdc",
    redis_type="hash",
    ttl=DAY,
    owner="processor (MassiveDataAnalyzer, LeaderboardAnalyzer)",
    payload="symbol -> JSON halt record {halted, since_ms, high_limit, low_limit} of its latest "
    "LULD halt or resume; merged newer-wins by KEY_HALT_VERSIONS, so every replica learns the "
    "halts another replica received",
)
KEY_HALT_VERSIONS: Final = Key(
    template="mdp:{{halts}}:versions",
    store="mdc",
    redis_type="hash",
    ttl=DAY,
    owner="processor (MassiveDataAnalyzer, LeaderboardAnalyzer)",
    payload="symbol -> timestamp (ms) of the LULD event behind its KEY_HALTS record",
)

#: Idle life of a symbol's trade window: a symbol that stops trading keeps its statistics for a
#: day (the published document has its own TTL), then the window is forgotten.
_TT_WINDOW_TTL: Final = DAY
KEY_TT_WINDOW: Final = Key(
    template="mdp:tt:{{{symbol}}}:window",
    store="mdc",
    redis_type="list",
    ttl=_TT_WINDOW_TTL,
    owner="processor (TopTradesAnalyzer)",
    payload="the symbol's last trades (1,000 by default), oldest first, each "
    "'seq:size:timestamp_ms:identity'; appended by every replica through one Lua script",
)
KEY_TT_IDS: Final = Key(
    template="mdp:tt:{{{symbol}}}:ids",
    store="mdc",
    redis_type="set",
    ttl=_TT_WINDOW_TTL,
    owner="processor (TopTradesAnalyzer)",
    payload="identities (exchange:trade id:timestamp) of the trades in KEY_TT_WINDOW: a trade "
    "delivered twice, to one replica or two, is counted once",
)
KEY_TT_STATS: Final = Key(
    template="mdp:tt:{{{symbol}}}:stats",
    store="mdc",
    redis_type="string",
    ttl=_TT_WINDOW_TTL,
    owner="processor (TopTradesAnalyzer)",
    payload="running figures of KEY_TT_WINDOW, one msgpack array read and written whole by the "
    "window script: seq (the newest timestamp of the first batch x 1000 plus one per trade: it "
    "only grows and versions the published statistics), count, total volume, the latest trade "
    "by timestamp (time, size, exchange, price), when the TTLs were last refreshed, and the "
    "peaks (seqs and sizes of strictly decreasing size, a monotonic deque) whose first is the "
    "window maximum",
)
KEY_TT_DIRTY: Final = Key(
    template="mdp:tt:dirty",
    store="mdc",
    redis_type="set",
    ttl=_TT_WINDOW_TTL,
    owner="processor (TopTradesAnalyzer)",
    payload="symbols whose window changed since the composing replica last published their "
    "statistics (SPOP by the lease holder)",
)
KEY_TT_BUCKET: Final = Key(
    template="mdp:{{tt:top}}:{second}",
    store="mdc",
    redis_type="zset",
    ttl=6 * MINUTE,
    owner="processor (TopTradesAnalyzer)",
    payload="the largest trades (JSON member, score = dollar value) whose timestamp falls in "
    "epoch second {second}, capped at the board size; the market-wide board is the union of "
    "the buckets inside its window. TTL: the board window plus one minute (6 minutes with the "
    "default 5-minute window)",
)
KEY_TT_UNION: Final = Key(
    template="mdp:{{tt:top}}:union",
    store="mdc",
    redis_type="zset",
    ttl=None,
    owner="processor (TopTradesAnalyzer)",
    payload="scratch of ZUNIONSTORE while composing the top trades board; created and deleted "
    "inside one MULTI, so never seen",
)
KEY_WIDGET_VERSION: Final = Key(
    template="mdp:wv:{{{feed}}}",
    store="wdc",
    redis_type="string",
    ttl=None,
    owner="processor (WidgetWriter)",
    payload="version of the document last stored in feed name {feed} (event time, or the "
    "window sequence): a write with a lower version is dropped, so a record never goes back in "
    "time whichever replica writes it; lives exactly as long as the document (the feed's TTL)",
)

KEY_SCANNER_DEDUP: Final = Key(
    template="mdp:scanner:dedup:{{{feed}}}:{digest}",
    store="wdc",
    redis_type="string",
    ttl=DAY,
    owner="scanner",
    payload="SET NX marker: a list-feed element (an alert) with this content digest was already "
    "appended by one scanner replica, so a second replica does not append it again; it outlives "
    "a trading day (04:00-20:00 ET), so a restart late in the day cannot append a morning's "
    "alert again",
)

KEY_WDS_REVOKED: Final = Key(
    template="mdp:wds:revoked",
    store="wdc",
    redis_type="zset",
    ttl=None,
    owner="control plane",
    payload="ids of ended login sessions (member) scored by the revocation time in ms: the WDS "
    "refuses and closes their tokens; entries older than the longest token life are trimmed",
)

ALL_FEEDS: Final[tuple[Feed, ...]] = tuple(
    value for value in list(globals().values()) if isinstance(value, Feed)
)
ALL_KEYS: Final[tuple[Key, ...]] = tuple(
    value for value in list(globals().values()) if isinstance(value, Key)
)


def feed_for(name: str) -> Feed | None:
    """The feed a concrete name belongs to, or ``None`` (not a client-readable feed)."""
    for feed in ALL_FEEDS:
        if feed.matches(name):
            return feed
    return None
