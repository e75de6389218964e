"""Typed writers of the widget data cache (WDC).

Every write goes through the shape its :class:`~mdp_cache.keys.Feed` declares, so the snapshot
key and the channel of a feed always agree: a ``value`` feed is ``SET name payload EX ttl``, a
``list`` feed is ``LPUSH`` + ``LTRIM`` to ``max_len`` + ``EXPIRE``; then, when asked, the same
bytes are published on the channel of the same name (the script of :class:`WidgetWriter` does
exactly that for many value documents at once). A ``series`` feed (today's minute bars) is
merged element by element by :data:`~mdp_cache.series.SERIES_MERGE_LUA`, every series write of
a flush in one script call. A whole flush is one pipeline.

A write may carry a ``version`` (event time, a window's sequence number). Several processor
replicas write the same per-symbol documents, each from the events it happened to receive, so
without an order a quote record could go back in time. A versioned write is stored and
published only if its version is at least the stored one (``KEY_WIDGET_VERSION``, living as
long as the document); at equal versions the payload with the greater SHA-1 wins, the rule of
:class:`~mdp_cache.ops.PutNewer`, so any order and duplication of writes converge on one
document and a duplicate is not published twice.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol, cast

import msgspec
from opentelemetry import trace
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import InvalidResponse, NoScriptError, ResponseError

from mdp_cache.client import is_cluster, slot_of
from mdp_cache.keys import KEY_WIDGET_VERSION, Feed
from mdp_cache.series import SERIES_MERGE_LUA, merge_element
from mdp_cache.versions import supersedes
from mdp_core.telemetry import inject_context

__all__ = [
    "ORDERED_LIST_PUSH_LUA",
    "PUBLISH",
    "SET_PUBLISH_LUA",
    "SPUBLISH",
    "VERSIONED_SET_PUBLISH_LUA",
    "WidgetItem",
    "WidgetWriter",
    "publish_flags",
    "queue_ordered_list_write",
    "queue_widget_write",
    "supersedes",  # re-exported from mdp_cache.versions, where the pure rule lives
    "with_trace_context",
]

SET_PUBLISH_LUA: Final = """
-- KEYS: feed names; ARGV[1]: msgpack array of [payload, ttl seconds, publish], one per key;
-- publish: 0 none, +1 PUBLISH (every subscriber), +2 SPUBLISH (the shard of the name)
local items = cmsgpack.unpack(ARGV[1])
for i = 1, #KEYS do
  local item = items[i]
  redis.call('SET', KEYS[i], item[1], 'EX', item[2])
  if item[3] % 2 == 1 then
    redis.call('PUBLISH', KEYS[i], item[1])
  end
  if item[3] >= 2 then
    redis.call('SPUBLISH', KEYS[i], item[1])
  end
end
return #KEYS
"""

VERSIONED_SET_PUBLISH_LUA: Final = """
-- KEYS[2i-1], KEYS[2i]: the feed name of item i and its version key (tagged with the name, so
--   both are in one cluster slot)
-- ARGV[1]: msgpack array of [payload, ttl seconds, publish (as in SET_PUBLISH_LUA), version
--   (decimal string)], one per item
local items = cmsgpack.unpack(ARGV[1])
local written = 0
for i, item in ipairs(items) do
  local name = KEYS[2 * i - 1]
  local vkey = KEYS[2 * i]
  local payload, version = item[1], tonumber(item[4])
  local wins = true
  local old = redis.call('GET', vkey)
  if old then
    local ov = tonumber(old)
    if version < ov then
      wins = false
    elseif version == ov then
      local prev = redis.call('GET', name)
      if prev and redis.sha1hex(payload) <= redis.sha1hex(prev) then
        wins = false
      end
    end
  end
  if wins then
    redis.call('SET', name, payload, 'EX', item[2])
    redis.call('SET', vkey, item[4], 'EX', item[2])
    if item[3] % 2 == 1 then
      redis.call('PUBLISH', name, payload)
    end
    if item[3] >= 2 then
      redis.call('SPUBLISH', name, payload)
    end
    written = written + 1
  end
end
return written
"""

_PACK: Final = msgspec.msgpack.Encoder().encode
PUBLISH: Final = 1
"""Publish flag: ``PUBLISH`` (every subscriber of the server or cluster; patterns match it)."""
SPUBLISH: Final = 2
"""Publish flag: ``SPUBLISH``, sharded pub/sub (Redis 7): only the shard of the name carries it."""


def publish_flags(publish: bool, *, cluster: bool) -> int:
    """How a write is published: not at all, ``PUBLISH`` on one Redis, both on a cluster.

    On a cluster ``SPUBLISH`` lets exact-name subscribers (``SSUBSCRIBE``) scale with the
    shards; sharded pub/sub has no patterns, so ``PUBLISH`` also goes out for the pattern
    subscribers (the scanner's ``quote:*``, WDS pattern feeds), which the cluster bus carries
    to every node.
    """
    if not publish:
        return 0
    return PUBLISH | SPUBLISH if cluster else PUBLISH


_VALUES_PER_CALL: Final = 256
"""Documents per script call: amortises the call without stalling Redis for long."""


class WidgetItem(Protocol):
    """**Protocol:** one widget write (``mdp_analyzers.typing.WidgetWrite`` fits)."""

    @property
    def feed(self) -> Feed:
        """The feed written."""
        ...

    @property
    def name(self) -> str:
        """The concrete feed name (key and channel)."""
        ...

    @property
    def payload(self) -> bytes:
        """The encoded document."""
        ...

    @property
    def publish(self) -> bool:
        """Whether to publish it as well."""
        ...

    @property
    def version(self) -> int | None:
        """Order of the document among writes of the same name (None: always written)."""
        ...


@dataclass(frozen=True, slots=True)
class _Traced:
    """A write whose JSON object document carries the writer's ``traceparent``."""

    item: WidgetItem
    payload: bytes

    @property
    def feed(self) -> Feed:
        return self.item.feed

    @property
    def name(self) -> str:
        return self.item.name

    @property
    def publish(self) -> bool:
        return self.item.publish

    @property
    def version(self) -> int | None:
        return self.item.version


def with_trace_context(writes: Sequence[WidgetItem]) -> Sequence[WidgetItem]:
    """The writes, their JSON object documents stamped with ``traceparent`` inside a span.

    Redis pub/sub has no headers, so the trace of a write travels in the document: the WDS
    continues it when it fans the message out. Only while a span records (an SDK is installed
    and sampled this trace); otherwise the writes are returned as they are, at the cost of one
    context lookup per batch. A stamped document differs from an unstamped one, so with
    tracing on an equal-version rewrite may be published again.
    """
    if not writes or not trace.get_current_span().is_recording():
        return writes
    parent = inject_context().get("traceparent")
    if parent is None:
        return writes
    field = b'"traceparent":' + msgspec.json.encode(parent)
    stamped: list[WidgetItem] = []
    for item in writes:
        payload = item.payload
        if payload[:1] == b"{" and payload[-1:] == b"}":
            inner = payload[1:-1].strip()
            body = b"{" + field + b"}" if not inner else payload[:-1] + b"," + field + b"}"
            stamped.append(_Traced(item, body))
        else:
            stamped.append(item)
    return stamped


ORDERED_LIST_PUSH_LUA: Final = """
-- KEYS[1] a list feed kept newest first by a time field of its JSON elements
-- ARGV[1] the cap; ARGV[2] the TTL; ARGV[3] the Lua pattern capturing an element's time
-- (e.g. '"as_of_ms":(%-?%d+)'); ARGV[4] one publish flag per element ('0' none, '1' PUBLISH,
-- '2' SPUBLISH, '3' both); ARGV[5..] the new elements in arrival order.
-- The result is exactly that of pushing the elements one at a time: each goes before the
-- first element that is not newer (or has no time), so of one time the later arrival is
-- first; an element without a time goes on top, one older than all is appended, and the list
-- is cut to the cap. An element is published when it enters the list. An element with a time
-- that is already there (among the elements of its time where it would go) is neither pushed
-- nor published again: a write retried after a lost reply, or sent again whole by a cluster
-- pipeline after one node failed, leaves list and subscribers as after the first (unless the
-- cap pushed it out in between).
-- The head of the list is read 16 at a time, only as deep as the oldest new element needs,
-- into a table where the elements are placed; then that head is replaced in one LTRIM and one
-- LPUSH. A flush's late alerts thus cost one walk of the head, not one walk each.
-- Returns the number of elements pushed.
local key = KEYS[1]
local cap, ttl, pattern, flags = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4]
local head, times, read, ended = {}, {}, 0, false
local pushed = 0
local function more()
  local chunk = redis.call('LRANGE', key, read, read + 15)
  for _, element in ipairs(chunk) do
    head[#head + 1] = element
    times[#times + 1] = tonumber(string.match(element, pattern)) or false
  end
  read = read + #chunk
  ended = #chunk < 16
end
for a = 5, #ARGV do
  local item = ARGV[a]
  local t = tonumber(string.match(item, pattern))
  local at = 1
  local duplicate = false
  if t then
    at = nil
    local i = 1
    while not at and i <= cap do
      if i > #head then
        if ended then
          break
        end
        more()
      end
      if i <= #head then
        local other = times[i]
        if (not other) or other <= t then
          at = i
        end
      end
      i = i + 1
    end
    if not at then
      at = #head + 1
    end
    -- Already there: among the elements of its time that follow (the newest of a time first).
    local j = at
    while j <= cap and not duplicate do
      if j > #head then
        if ended then
          break
        end
        more()
      end
      if j > #head or times[j] ~= t then
        break
      end
      duplicate = head[j] == item
      j = j + 1
    end
  end
  if not duplicate and at <= cap then
    table.insert(head, at, item)
    table.insert(times, at, t or false)
    pushed = pushed + 1
    local flag = tonumber(string.sub(flags, a - 4, a - 4)) or 0
    if flag % 2 == 1 then
      redis.call('PUBLISH', key, item)
    end
    if flag >= 2 then
      redis.call('SPUBLISH', key, item)
    end
  end
end
if read > 0 then
  redis.call('LTRIM', key, read, -1)
end
local n = math.min(#head, cap)
local reversed = {}
for i = n, 1, -1 do
  reversed[#reversed + 1] = head[i]
end
for s = 1, n, 4000 do
  redis.call('LPUSH', key, unpack(reversed, s, math.min(s + 3999, n)))
end
redis.call('LTRIM', key, 0, cap - 1)
redis.call('EXPIRE', key, ttl)
return pushed
"""


def queue_widget_write(
    pipe: Pipeline,
    feed: Feed,
    name: str,
    payload: bytes,
    *,
    publish: bool = True,
    scripts: bool = True,
    sharded: bool = False,
) -> int:
    """Queue one feed write on ``pipe``; return how many commands were queued.

    A list feed with an ``order_by`` field is kept in that order by ``ORDERED_LIST_PUSH_LUA``;
    without ``scripts`` (an emulator without Lua) its elements keep arrival order. With
    ``sharded`` (a Redis Cluster) the write is published as :func:`publish_flags` says.

    Raises:
        ValueError: ``name`` is not a name of ``feed`` (a key/channel mismatch in the making).
    """
    if not feed.matches(name):
        msg = f"{name!r} is not a name of feed {feed.template!r}"
        raise ValueError(msg)
    if feed.shape == "value":
        pipe.set(name, payload, ex=feed.ttl)
        queued = 1
    elif feed.shape == "series":
        msg = f"series feed {feed.template!r} is written by WidgetWriter (one merge per flush)"
        raise ValueError(msg)
    elif feed.order_by is not None and scripts:
        return queue_ordered_list_write(
            pipe, feed, name, [payload], publish=publish, sharded=sharded
        )
    else:
        cap = feed.max_len if feed.max_len is not None else 1
        pipe.lpush(name, payload)
        pipe.ltrim(name, 0, cap - 1)
        pipe.expire(name, feed.ttl)
        queued = 3
    if publish:
        queued += _queue_publish(pipe, name, payload, sharded=sharded)
    return queued


def _queue_publish(pipe: Pipeline, name: str, payload: bytes, *, sharded: bool) -> int:
    """Queue the publish of one write as :func:`publish_flags` says; return the commands."""
    flags = publish_flags(True, cluster=sharded)
    if flags & PUBLISH:
        # As a command: redis-py's cluster pipeline refuses its publish() helper.
        pipe.execute_command("PUBLISH", name, payload)
    if flags & SPUBLISH:
        pipe.execute_command("SPUBLISH", name, payload)
    return bin(flags).count("1")


def queue_ordered_list_write(
    pipe: Pipeline,
    feed: Feed,
    name: str,
    payloads: Sequence[bytes],
    *,
    publish: bool | Sequence[bool] = True,
    sharded: bool = False,
) -> int:
    """Queue the push of ``payloads`` (in arrival order) onto one ordered list feed.

    One ``ORDERED_LIST_PUSH_LUA`` call for all of them: the same list as pushing them one at a
    time, for one walk of the list's head (late alerts of a busy flush walked it once each).
    ``publish`` says for all payloads or for each whether it is published too, by the script
    itself as it enters the list: an element already there (a retried write) is neither pushed
    nor published again, one too old for the list is not published. Returns how many commands
    were queued (one).

    Raises:
        ValueError: ``name`` is not a name of ``feed``, ``feed`` is not a list with an
            ``order_by``, or ``publish`` has not one flag per payload.
    """
    if not feed.matches(name):
        msg = f"{name!r} is not a name of feed {feed.template!r}"
        raise ValueError(msg)
    if feed.order_by is None or feed.shape != "list":
        msg = f"feed {feed.template!r} is not a list ordered by a time field"
        raise ValueError(msg)
    if not payloads:
        return 0
    cap = feed.max_len if feed.max_len is not None else 1
    pattern = f'"{feed.order_by}":(%-?%d+)'
    flags = [publish] * len(payloads) if isinstance(publish, bool) else list(publish)
    if len(flags) != len(payloads):
        msg = f"{len(flags)} publish flags for {len(payloads)} payloads"
        raise ValueError(msg)
    published = "".join(str(publish_flags(flag, cluster=sharded)) for flag in flags)
    pipe.execute_command(
        "EVAL", ORDERED_LIST_PUSH_LUA, 1, name, cap, feed.ttl, pattern, published, *payloads
    )
    return 1


def _queue_lists(pipe: Pipeline, writes: Sequence[WidgetItem], *, sharded: bool = False) -> int:
    """Queue list writes; those of one ordered list as one script call. Returns commands."""
    sent = 0
    ordered: dict[str, list[WidgetItem]] = {}
    for item in writes:
        if item.feed.order_by is not None:
            ordered.setdefault(item.name, []).append(item)
        else:
            sent += queue_widget_write(
                pipe, item.feed, item.name, item.payload, publish=item.publish, sharded=sharded
            )
    for name, items in ordered.items():
        sent += queue_ordered_list_write(
            pipe,
            items[0].feed,
            name,
            [item.payload for item in items],
            publish=[item.publish for item in items],
            sharded=sharded,
        )
    return sent


@dataclass(frozen=True, slots=True)
class _ScriptCall:
    """One call of a value script: which script, and its EVALSHA arguments after the SHA."""

    versioned: bool
    numkeys: int
    args: tuple[str | bytes, ...]
    series: bool = False


def _text(payload: bytes) -> str:
    """Payloads go as msgpack strings: the Lua cmsgpack of Redis reads no ``bin`` type."""
    return payload.decode("utf-8", "surrogateescape")


@functools.lru_cache(maxsize=1 << 16)
def _version_key(name: str) -> str:
    """The version key of a versioned document, remembered (a flush writes one per symbol)."""
    return KEY_WIDGET_VERSION.name(feed=name)


def _chunks(items: Sequence[WidgetItem], cluster: bool) -> list[Sequence[WidgetItem]]:
    """``items`` in script calls of a few hundred, each of one slot on a cluster."""
    groups: dict[int, list[WidgetItem]] = defaultdict(list)
    for item in items:
        groups[slot_of(item.name) if cluster else 0].append(item)
    return [
        group[start : start + _VALUES_PER_CALL]
        for group in groups.values()
        for start in range(0, len(group), _VALUES_PER_CALL)
    ]


def _script_calls(
    values: Sequence[WidgetItem],
    versioned: Sequence[WidgetItem],
    series: Sequence[WidgetItem] = (),
    *,
    cluster: bool = False,
) -> list[_ScriptCall]:
    """The script calls storing ``values``, ``versioned`` and ``series``, a few hundred each.

    Versioned documents go first, in their order, then plain values, then series: Redis runs
    a pipeline in order, so in a burst of a thousand rows a processor's quote records (the
    feed clients follow, last of its versioned documents) are not held behind the minute
    bars, the costliest documents to merge, and a record's inputs (an LULD record) still go
    before it. On a cluster each call holds the names of one slot, and the order holds
    within a slot.
    """
    calls: list[_ScriptCall] = []
    for chunk in _chunks(versioned, cluster):
        packed = _PACK(
            [
                (
                    _text(item.payload),
                    item.feed.ttl,
                    publish_flags(item.publish, cluster=cluster),
                    str(item.version),
                )
                for item in chunk
            ]
        )
        keys = [key for item in chunk for key in (item.name, _version_key(item.name))]
        calls.append(_ScriptCall(True, len(keys), (*keys, packed)))
    for chunk in _chunks(values, cluster):
        packed = _PACK(
            [
                (_text(item.payload), item.feed.ttl, publish_flags(item.publish, cluster=cluster))
                for item in chunk
            ]
        )
        calls.append(_ScriptCall(False, len(chunk), (*(item.name for item in chunk), packed)))
    for chunk in _chunks(series, cluster):
        packed = _PACK(
            [
                (
                    _text(item.payload),
                    item.feed.max_len or 1,
                    item.feed.ttl,
                    publish_flags(item.publish, cluster=cluster),
                )
                for item in chunk
            ]
        )
        calls.append(
            _ScriptCall(False, len(chunk), (*(item.name for item in chunk), packed), series=True)
        )
    return calls


class WidgetWriter:
    """Applies batches of widget writes to WDC, one pipeline per batch.

    ``value`` writes, the bulk of the traffic (a quote record per changed symbol per flush), go
    through a small Lua script that stores and publishes a few hundred documents per call, so
    a flush costs a handful of commands instead of two per document; ``list`` writes are
    queued as plain commands. Everything travels in one non-transactional pipeline.

    Args:
        redis: The WDC client.
    """

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._sha: str | None = None
        self._versioned_sha: str | None = None
        self._series_sha: str | None = None
        self._plain = False
        self._cluster = is_cluster(redis)
        #: Versioned writes dropped because the stored document was as new or newer.
        self.superseded = 0

    async def write(self, writes: Sequence[WidgetItem]) -> int:
        """Write (and publish) every item in one pipeline.

        Returns:
            The number of Redis commands sent.

        Raises:
            ValueError: a write names something that is not a name of its feed.
        """
        if not writes:
            return 0
        writes = with_trace_context(writes)
        if self._sha is None and not self._plain:
            await self._choose_mode()
        if self._plain:
            return await self._send_plain(writes)
        try:
            return await self._send(writes)
        except ResponseError as exc:
            if "cmsgpack" not in str(exc):
                raise
            # A Redis without Lua cmsgpack (an emulator): same effects, one command each.
            self._plain = True
            return await self._send_plain(writes)

    async def _choose_mode(self) -> None:
        """Use the script when the server's Lua has ``cmsgpack``, plain commands otherwise.

        Emulators (fakeredis) lack it, and some answer a script that uses it with a reply the
        client cannot even parse, so the capability is probed once instead of inferred from
        an error.
        """
        try:
            kind = await self._redis.eval("return type(cmsgpack)", 0)
        except (ResponseError, InvalidResponse):
            kind = None
        if kind in (b"table", "table"):
            await self._load_scripts()
        else:
            self._plain = True

    async def _load_scripts(self) -> None:
        # Both SHAs are set at once, after both loads: a flush and a composition writing side
        # by side never see one script known and the other not.
        plain = str(await self._redis.script_load(SET_PUBLISH_LUA))
        versioned = str(await self._redis.script_load(VERSIONED_SET_PUBLISH_LUA))
        series = str(await self._redis.script_load(SERIES_MERGE_LUA))
        self._sha, self._versioned_sha, self._series_sha = plain, versioned, series

    def _sha_of(self, call: _ScriptCall) -> str:
        sha = (
            self._series_sha
            if call.series
            else self._versioned_sha
            if call.versioned
            else self._sha
        )
        assert sha is not None
        return sha

    async def _send_plain(self, writes: Sequence[WidgetItem]) -> int:
        """One command per effect; versions compared here, between two round trips.

        Not atomic across writers: this path serves emulators, where one process writes.
        """
        # The series last, as the scripts send them (``_script_calls``).
        series = [item for item in writes if item.feed.shape == "series"]
        writes = [item for item in writes if item.feed.shape != "series"]
        versioned = [item for item in writes if item.version is not None]
        winners = set(range(len(writes)))
        if versioned:
            read = self._redis.pipeline(transaction=False)
            for item in versioned:
                read.get(KEY_WIDGET_VERSION.name(feed=item.name))
                read.get(item.name)
            replies = await read.execute()
            latest: dict[str, tuple[int, bytes | None]] = {}
            for n, item in enumerate(versioned):
                old_version, old_payload = replies[2 * n], replies[2 * n + 1]
                if item.name not in latest and old_version is not None:
                    latest[item.name] = (int(old_version), old_payload)
            for index, item in enumerate(writes):
                if item.version is None:
                    continue
                if supersedes(item.version, item.payload, latest.get(item.name)):
                    latest[item.name] = (item.version, item.payload)
                else:
                    winners.discard(index)
                    self.superseded += 1
        pipe = self._redis.pipeline(transaction=False)
        sent = 0
        for index, item in enumerate(writes):
            if index not in winners:
                continue
            sent += queue_widget_write(
                pipe, item.feed, item.name, item.payload, publish=item.publish, scripts=False
            )
            if item.version is not None:
                pipe.set(KEY_WIDGET_VERSION.name(feed=item.name), item.version, ex=item.feed.ttl)
                sent += 1
        await pipe.execute()
        if series:
            await self._merge_plain(series)
        return sent

    async def _run_forgotten(self, calls: list[_ScriptCall], replies: list[object]) -> None:
        """Load the scripts again and rerun the calls the server answered NOSCRIPT, in place."""
        forgotten = [n for n, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if not forgotten:
            return
        await self._load_scripts()
        retry = self._redis.pipeline(transaction=False)
        for n in forgotten:
            call = calls[n]
            retry.execute_command("EVALSHA", self._sha_of(call), call.numkeys, *call.args)
        for n, reply in zip(forgotten, await retry.execute(), strict=True):
            replies[n] = reply

    async def _merge_plain(self, series: Sequence[WidgetItem]) -> None:
        """Series writes merged here (:func:`~mdp_cache.series.merge_element`), lists rewritten."""
        stored: dict[str, list[bytes]] = {}
        for item in series:
            if item.name not in stored:
                found = await self._redis.lrange(item.name, 0, -1)
                stored[item.name] = [e if isinstance(e, bytes) else e.encode() for e in found]
        pipe = self._redis.pipeline(transaction=False)
        for item in series:
            stored_now = merge_element(stored[item.name], item.payload, item.feed.max_len or 1)
            if stored_now and item.publish:
                _queue_publish(pipe, item.name, item.payload, sharded=self._cluster)
        for item in {item.name: item for item in series}.values():
            merged = stored[item.name]
            pipe.delete(item.name)
            if merged:
                pipe.rpush(item.name, *merged)
                pipe.expire(item.name, item.feed.ttl)
        await pipe.execute()

    async def _send(self, writes: Sequence[WidgetItem]) -> int:
        """One pipeline: list writes as commands, value writes through the scripts.

        If the server forgot the scripts (restart, ``SCRIPT FLUSH``), only the script calls are
        sent again after loading them: the list writes already landed, and sending them twice
        would push their elements twice.
        """
        assert self._sha is not None
        assert self._versioned_sha is not None
        pipe = self._redis.pipeline(transaction=False)
        values: list[WidgetItem] = []
        versioned: list[WidgetItem] = []
        lists: list[WidgetItem] = []
        series: list[WidgetItem] = []
        for item in writes:
            if item.feed.shape == "list":
                lists.append(item)
            elif not item.feed.matches(item.name):
                msg = f"{item.name!r} is not a name of feed {item.feed.template!r}"
                raise ValueError(msg)
            elif item.feed.shape == "series":
                series.append(item)
            else:
                (values if item.version is None else versioned).append(item)
        sent = _queue_lists(pipe, lists, sharded=self._cluster)
        commands = sent
        calls = _script_calls(values, versioned, series, cluster=self._cluster)
        for call in calls:
            # As a command: redis-py's cluster pipeline refuses its evalsha() helper.
            pipe.execute_command("EVALSHA", self._sha_of(call), call.numkeys, *call.args)
        replies = await pipe.execute(raise_on_error=False)
        for reply in replies[:commands]:
            if isinstance(reply, Exception):
                raise reply
        script_replies: list[object] = list(replies[commands:])
        await self._run_forgotten(calls, script_replies)
        for reply in script_replies:
            if isinstance(reply, Exception):
                raise reply
        written = sum(
            int(cast(int, reply))
            for call, reply in zip(calls, script_replies, strict=True)
            if call.versioned
        )
        self.superseded += len(versioned) - written
        return sent + len(calls)
