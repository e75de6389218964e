"""Fan-out hub: one Redis pub/sub link per process, shared by every client.

The hub reference-counts subscriptions: the first client that wants ``quote:AAPL`` (or the
pattern ``quote:*``) makes the link subscribe, the last one to leave makes it unsubscribe.
Each published message is validated and turned into its outgoing frame **once**, then handed
to every interested client's queue without awaiting any client.

Dispatch keys, fixing the historical wildcard bug: a plain ``message`` is routed by its concrete
channel to exact subscribers; a ``pmessage`` is routed by the *pattern* Redis matched to
pattern subscribers (Redis names both), and the frame always names the concrete feed.

On a Redis Cluster the link is a :class:`~mdp_wds.shards.ClusterPubSub`: exact names arrive
by sharded pub/sub from their shard's master, patterns from one node, with the same dispatch.

Board projections: a client that follows a board with ``fields`` joins the *view* of that
field set (a :class:`~mdp_wds.deltas.BoardTracker` of its own, made by the first such client and
released with the last), so each projection is built, numbered and diffed once for all its
clients too. A feed has at most ``max_field_sets`` views at once: they cost work on every
publication, so a client cannot make the hub keep an unbounded number of them.

Snapshots are read through a separate pooled client, so a slow ``SCAN`` never holds up delivery.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Protocol, cast

import msgspec
from redis.exceptions import ResponseError

from mdp_cache.client import PUBSUB_RECONNECT, REDIS_ERRORS, create_redis, is_cluster_url, mget
from mdp_core.backoff import BackoffPolicy
from mdp_core.logging import get_logger
from mdp_core.telemetry import consumer_span
from mdp_wds.access import FeedRef
from mdp_wds.deltas import BoardTracker
from mdp_wds.link import Kind, PubSubLink
from mdp_wds.protocol import Frame, delta_frame, list_snapshot_data, update_frame
from mdp_wds.shards import ClusterPubSub
from mdp_wds.stats import WdsStats

__all__ = [
    "MAX_FIELD_SETS",
    "BoardFrame",
    "Hub",
    "SnapshotItem",
    "SnapshotUnavailable",
    "Subscriber",
    "TooManyFieldSets",
]

_log = get_logger(__name__)

_SCAN_COUNT: Final = 1_000
_NULL: Final = b"null"
#: Distinct field sets (projections) one board feed may be followed with at once, by default.
MAX_FIELD_SETS: Final = 16


class TooManyFieldSets(Exception):
    """A board feed already has ``max_field_sets`` projections; a new one is refused."""


class SnapshotUnavailable(Exception):
    """The cache could not be read (Redis down or failing); the client gets ``unavailable``."""


@dataclass(frozen=True, slots=True)
class _View:
    """The clients following one board's projection on one field set, and its tracker."""

    tracker: BoardTracker
    subscribers: set[Subscriber]


@dataclass(frozen=True, slots=True)
class BoardFrame:
    """A board publication's number and its delta frame (None: it goes whole)."""

    seq: int
    delta: Frame | None


class Subscriber(Protocol):
    """**Protocol:** what the hub needs from a client session."""

    def deliver(self, key: str, seq: int, frame: Frame, board: BoardFrame | None = None) -> None:
        """Take one update for subscription ``key``; must not block or await.

        ``board``: for a board feed, its publication number and delta, built once for all.
        """
        ...

    def resync(self) -> None:
        """Re-send snapshots of every subscription (after a pub/sub gap)."""
        ...


@dataclass(frozen=True, slots=True)
class SnapshotItem:
    """One feed's current content: ``data`` is JSON (a value, an array or ``null``)."""

    feed: str
    data: bytes


class _Stamp(msgspec.Struct):
    as_of_ms: float | None = None
    published_ms: float | None = None
    traceparent: str | None = None


_STAMP: Final = msgspec.json.Decoder(_Stamp)
_ANY: Final = msgspec.json.Decoder()
_NO_STAMP: Final = _Stamp()


def _stamp(payload: bytes) -> _Stamp:
    """The payload's event time and trace context, validating that it is JSON at all.

    Raises:
        msgspec.DecodeError: when the payload is not valid JSON.
        RecursionError: when it is nested past the decoder's recursion limit.
        UnicodeDecodeError: when it is not UTF-8: it would go out in a text frame, which a
            client must fail (RFC 6455 8.1), and the typed decoder skips unknown fields unread.
    """
    if not payload.isascii():  # C speed; the documents are ASCII but for news text
        payload.decode()
    try:
        return _STAMP.decode(payload)
    except msgspec.ValidationError:
        _ANY.decode(payload)  # not an object with numeric stamps: still has to be JSON
        return _NO_STAMP


def _kind(ref: FeedRef) -> Kind:
    return "pattern" if ref.is_pattern else "channel"


def _board_frames(
    name: str,
    tracker: BoardTracker,
    payload: bytes,
    as_of_ms: float | None,
    targets: Iterable[Subscriber],
) -> tuple[Frame, Iterable[Subscriber], BoardFrame]:
    """A board publication as ``tracker``'s clients get it: whole (numbered), and its delta."""
    delta = tracker.advance(payload)
    document = payload if tracker.document is None else tracker.document
    frame = update_frame(name, document, as_of_ms, seq=tracker.seq)
    delta_out = None if delta is None else delta_frame(name, tracker.seq, delta, as_of_ms)
    return frame, targets, BoardFrame(tracker.seq, delta_out)


class Hub:
    """Shared subscriptions, dispatch and snapshot reads for one WDS process.

    Args:
        redis_url: The widget data cache (WDC).
        stats: Where the hub counts messages, subscriptions and link state.
        backoff: Reconnect delays of the pub/sub link.
        ping_interval: Keepalive of the pub/sub link.
        max_field_sets: Projections (distinct ``fields``) one board feed may have at once.
    """

    def __init__(
        self,
        redis_url: str,
        stats: WdsStats,
        *,
        backoff: BackoffPolicy = PUBSUB_RECONNECT,
        ping_interval: float = 15.0,
        max_field_sets: int = MAX_FIELD_SETS,
    ) -> None:
        self._stats = stats
        self._max_field_sets = max_field_sets
        self._redis = create_redis(redis_url, client_name="mdp-wds")
        # On a Redis Cluster: exact names by SSUBSCRIBE on their shards (mdp_wds.shards).
        link_class = ClusterPubSub if is_cluster_url(redis_url) else PubSubLink
        self._link: PubSubLink | ClusterPubSub = link_class(
            redis_url,
            self._on_message,
            on_resync=self._on_resync,
            on_state=self._on_state,
            backoff=backoff,
            ping_interval=ping_interval,
        )
        self._exact: dict[str, set[Subscriber]] = {}
        self._patterns: dict[str, tuple[FeedRef, set[Subscriber]]] = {}
        self._seq = itertools.count(1)
        self._last_seq = 0
        #: Board feeds followed by name: their publications, numbered and diffed once.
        self._boards: dict[str, BoardTracker] = {}
        #: Boards followed by projection: name -> field set -> its clients and tracker.
        self._views: dict[str, dict[frozenset[str], _View]] = {}

    @property
    def connected(self) -> bool:
        """Whether the pub/sub link is up (readiness)."""
        return self._link.connected

    @property
    def last_seq(self) -> int:
        """Sequence number of the last dispatched message (snapshot/update ordering)."""
        return self._last_seq

    def start(self) -> None:
        """Start the pub/sub link."""
        self._link.start()

    async def wait_connected(self, within: float | None = None) -> bool:
        """Wait for the pub/sub link; ``False`` when ``within`` seconds pass first."""
        return await self._link.wait_connected(within)

    async def close(self) -> None:
        """Stop the link and the snapshot client."""
        await self._link.stop()
        await self._redis.aclose()

    # --- subscriptions --------------------------------------------------------------------

    async def add(
        self, subscriber: Subscriber, ref: FeedRef, fields: frozenset[str] | None = None
    ) -> bool:
        """Register ``subscriber`` for ``ref`` and make sure Redis delivers it.

        ``fields``: follow the board ``ref`` (by name, with a ``delta_key``) projected on these
        row fields.

        Returns:
            ``True`` once the Redis subscription is confirmed active, ``False`` when the link is
            down (it is made on reconnect, followed by a resync).

        Raises:
            TooManyFieldSets: when ``fields`` would be a new projection of a feed that has
                ``max_field_sets`` already (nothing is registered).
            ValueError: when ``fields`` is given for a pattern or a feed without a delta key.
        """
        if fields is not None:
            self._join_view(subscriber, ref, fields)
        elif ref.is_pattern:
            self._patterns.setdefault(ref.name, (ref, set()))[1].add(subscriber)
        else:
            self._exact.setdefault(ref.name, set()).add(subscriber)
            if ref.feed.delta_key is not None and ref.name not in self._boards:
                self._boards[ref.name] = BoardTracker(ref.feed.delta_key)
        # Every adder awaits a confirmation: a second client must not read its snapshot
        # before the first client's SUBSCRIBE is active either.
        active = await self._link.subscribe(ref.name, _kind(ref))
        self._stats.redis_subscriptions = self._link.subscription_count
        return active

    def _join_view(self, subscriber: Subscriber, ref: FeedRef, fields: frozenset[str]) -> None:
        key = ref.feed.delta_key
        if key is None or ref.is_pattern:
            msg = f"{ref.name!r} is not a board by name: it has no projection"
            raise ValueError(msg)
        self._exact.setdefault(ref.name, set())  # the plain clients (maybe none)
        views = self._views.setdefault(ref.name, {})
        view = views.get(fields)
        if view is None:
            if len(views) >= self._max_field_sets:
                if not views:
                    del self._views[ref.name]
                if not self._exact[ref.name]:
                    del self._exact[ref.name]
                raise TooManyFieldSets(ref.name)
            view = views[fields] = _View(BoardTracker(key, fields), set())
        view.subscribers.add(subscriber)

    def remove(self, subscriber: Subscriber, ref: FeedRef) -> None:
        """Unregister; the last subscriber of a name makes the link unsubscribe."""
        if ref.is_pattern:
            entry = self._patterns.get(ref.name)
            subscribers = entry[1] if entry is not None else None
        else:
            subscribers = self._exact.get(ref.name)
        if subscribers is None:
            return
        subscribers.discard(subscriber)
        views = self._views.get(ref.name)
        if views is not None:
            for fields, view in list(views.items()):
                view.subscribers.discard(subscriber)
                if not view.subscribers:
                    del views[fields]  # its last client left: the tracker goes
            if not views:
                del self._views[ref.name]
        if not subscribers:
            self._boards.pop(ref.name, None)
        if not subscribers and ref.name not in self._views:
            if ref.is_pattern:
                del self._patterns[ref.name]
            else:
                del self._exact[ref.name]
            self._link.unsubscribe(ref.name, _kind(ref))
            self._stats.redis_subscriptions = self._link.subscription_count

    def board_seq(
        self, name: str, payload: bytes, fields: frozenset[str] | None = None
    ) -> int | None:
        """The number of the board publication whose bytes are ``payload``, if it is the last.

        ``fields``: the number in the projection on these fields (its own numbering).
        """
        if fields is None:
            tracker = self._boards.get(name)
        else:
            view = self._views.get(name, {}).get(fields)
            tracker = None if view is None else view.tracker
        if tracker is None or tracker.payload != payload:
            return None
        return tracker.seq

    def field_sets(self, name: str) -> int:
        """Projections of a board currently kept (for tests and ``/status``)."""
        return len(self._views.get(name, ()))

    def subscriber_count(self, name: str) -> int:
        """Clients following a name or pattern (for tests and ``/status``)."""
        if name in self._patterns:
            return len(self._patterns[name][1])
        views = self._views.get(name, {})
        return len(self._exact.get(name, ())) + sum(len(v.subscribers) for v in views.values())

    # --- dispatch -------------------------------------------------------------------------

    def _on_message(self, channel: bytes, pattern: bytes | None, payload: bytes) -> None:
        self._stats.messages_in += 1
        try:
            name = channel.decode()
            key = name if pattern is None else pattern.decode()
        except UnicodeDecodeError:
            return
        views: dict[frozenset[str], _View] | None = None
        if pattern is None:
            targets: Iterable[Subscriber] | None = self._exact.get(key)
            views = self._views.get(key)
        else:
            entry = self._patterns.get(key)
            # A glob such as quote:* also matches names outside the feed (quote:a:b).
            targets = entry[1] if entry is not None and entry[0].feed.matches(name) else None
        if not targets and not views:
            return
        try:
            stamp = _stamp(payload)
        except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
            # Skipped here: escaping, it would end the pub/sub link of every feed.
            self._stats.bad_payloads += 1
            _log.warning("published_payload_not_json_skipped", feed=name)
            return
        as_of_ms = stamp.published_ms if stamp.published_ms is not None else stamp.as_of_ms
        tracker = self._boards.get(key) if pattern is None else None
        groups: list[tuple[Frame, Iterable[Subscriber], BoardFrame | None]] = []
        if targets:
            if tracker is None:
                groups.append((update_frame(name, payload, as_of_ms), targets, None))
            else:
                groups.append(_board_frames(name, tracker, payload, as_of_ms, targets))
        groups.extend(
            _board_frames(name, view.tracker, payload, as_of_ms, view.subscribers)
            for view in (views or {}).values()
        )
        seq = next(self._seq)
        self._last_seq = seq
        if stamp.traceparent is None:
            self._fan_out(key, seq, groups)
            return
        # The writer's trace continues here (see mdp_cache.widgets.with_trace_context).
        with consumer_span(
            "wds.fanout",
            component="wds",
            carrier={"traceparent": stamp.traceparent},
            feed=name,
        ):
            self._fan_out(key, seq, groups)

    def _fan_out(
        self,
        key: str,
        seq: int,
        groups: list[tuple[Frame, Iterable[Subscriber], BoardFrame | None]],
    ) -> None:
        started = time.perf_counter()
        for frame, targets, board in groups:
            for subscriber in tuple(targets):
                subscriber.deliver(key, seq, frame, board)
        self._stats.fanout.observe(time.perf_counter() - started)

    def _on_resync(self) -> None:
        self._stats.redis_reconnects += 1
        subscribers: set[Subscriber] = set()
        for exact in self._exact.values():
            subscribers.update(exact)
        for views in self._views.values():
            for view in views.values():
                subscribers.update(view.subscribers)
        for _, patterned in self._patterns.values():
            subscribers.update(patterned)
        _log.info("snapshots_resent_after_gap", clients=len(subscribers))
        for subscriber in subscribers:
            subscriber.resync()

    def _on_state(self, up: bool) -> None:
        self._stats.redis_connected = up

    # --- snapshots ------------------------------------------------------------------------

    def _checked(self, feed: str, data: bytes | None) -> bytes:
        if data is None:
            return _NULL
        try:
            _ANY.decode(data)
        except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
            self._stats.bad_payloads += 1
            _log.warning("stored_payload_not_json", feed=feed)
            return _NULL
        return data

    def _checked_list(self, feed: str, elements: list[bytes]) -> bytes:
        good = [e for e in elements if self._checked(feed, e) is not _NULL]
        return list_snapshot_data(good)

    async def snapshot(self, ref: FeedRef, limit: int) -> list[SnapshotItem]:
        """Read the current content of a feed (value: GET; list: LRANGE; pattern: SCAN+MGET).

        A missing value feed yields ``null``; a pattern yields one item per existing matching
        feed, at most ``limit`` of them.

        Raises:
            SnapshotUnavailable: when Redis cannot be read.
        """
        try:
            if not ref.is_pattern:
                return [await self._read_one(ref.name, ref, limit)]
            names: list[str] = []
            async for raw in self._redis.scan_iter(match=ref.name, count=_SCAN_COUNT):
                name = raw.decode(errors="replace")
                if ref.feed.matches(name):
                    names.append(name)
                    if len(names) >= limit:
                        break
            return await self._read_many(names, ref, limit)
        except REDIS_ERRORS as exc:
            # REDIS_ERRORS includes a cluster's SlotNotCoveredError (between a master's loss
            # and its replica's promotion), which is no RedisError: uncaught, it failed the
            # client's resync job, and its feeds stayed held until the client next spoke.
            self._stats.snapshot_errors += 1
            raise SnapshotUnavailable(type(exc).__name__) from exc

    async def _read_one(self, name: str, ref: FeedRef, limit: int) -> SnapshotItem:
        try:
            if ref.feed.shape != "value":  # list and series: elements newest first
                elements = cast("list[bytes]", await self._redis.lrange(name, 0, limit - 1))
                return SnapshotItem(name, self._checked_list(name, elements))
            value = cast("bytes | None", await self._redis.get(name))
        except ResponseError:  # WRONGTYPE: someone wrote another type under a feed name
            self._stats.bad_payloads += 1
            return SnapshotItem(name, _NULL)
        return SnapshotItem(name, self._checked(name, value))

    async def _read_many(self, names: list[str], ref: FeedRef, limit: int) -> list[SnapshotItem]:
        if not names:
            return []
        if ref.feed.shape != "value":  # list and series: elements newest first
            pipe = self._redis.pipeline(transaction=False)
            for name in names:
                pipe.lrange(name, 0, limit - 1)
            lists = await pipe.execute(raise_on_error=False)
            return [
                SnapshotItem(name, self._checked_list(name, elements))
                for name, elements in zip(names, lists, strict=True)
                if isinstance(elements, list) and elements
            ]
        try:
            values = await mget(self._redis, names)
        except ResponseError:
            values = [None] * len(names)
        return [
            SnapshotItem(name, self._checked(name, value))
            for name, value in zip(names, values, strict=True)
            if value is not None
        ]
