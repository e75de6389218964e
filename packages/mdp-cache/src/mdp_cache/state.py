"""The Redis backend of analyzer state (MDC): one pipeline per flush, merges done in Lua.

:class:`RedisState` applies the operations of :mod:`mdp_cache.ops`. Row writes
(:class:`~mdp_cache.ops.PutNewer`) are grouped by target keys and sent as a few ``EVALSHA``
calls carrying hundreds of rows each; the script keeps, per member, the row with the highest
version (ties broken by payload digest) and updates the board scores in the same atomic step.
Several processor replicas can therefore write the same symbols in any order, any number of
times, and converge on the same rows and boards.

Trade windows (:class:`~mdp_cache.ops.AppendTrades`) go through a second script that appends
a few dozen symbols' trades per call, de-duplicates them by identity, evicts what falls out of
the window and keeps the running figures (count, total, monotonic deque of sizes, latest
trade) in one packed value, so every replica's trades land in one window per symbol at a
handful of commands per symbol and flush (about 7 µs of Redis time per trade when each flush
brings one trade per symbol, the live case; 3 µs in large batches). Capped rankings
(:class:`~mdp_cache.ops.KeepTop`) are plain ``ZADD`` + ``ZREMRANGEBYRANK`` in the same
pipeline.

The scripts are loaded once with ``SCRIPT LOAD``; if the server forgets them (restart,
``SCRIPT FLUSH``) the flush reloads them and sends itself again (the plain commands that ran
the first time run twice, which changes nothing: see :meth:`RedisState.apply`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Final, cast

import msgspec
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError

from mdp_cache.client import is_cluster, mget, slot_of
from mdp_cache.keys import (
    KEY_SEEN_BATCH,
    KEY_TT_DIRTY,
    KEY_TT_IDS,
    KEY_TT_STATS,
    KEY_TT_UNION,
    KEY_TT_WINDOW,
)
from mdp_cache.ops import (
    Accepted,
    AppendTrades,
    Applied,
    KeepTop,
    PutMerged,
    PutNewer,
    RankedMember,
    Read,
    Refused,
    RowsRead,
    SetValue,
    StateOp,
    TopRead,
    UnionTopRead,
    WindowStats,
    WindowStatsRead,
    published_version,
    unknown_op,
)
from mdp_cache.ownership import LEASE_LUA
from mdp_core.clock import Clock, LiveClock

__all__ = [
    "APPEND_TRADES_LUA",
    "BOARD_TOP_LUA",
    "MERGE_FIGURES_LUA",
    "MERGE_ROWS_LUA",
    "READ_WINDOWS_LUA",
    "RedisState",
]

ROWS_PER_CALL: Final = 256
"""Rows per EVALSHA: large enough to amortise the call, small enough not to stall Redis."""

MERGE_ROWS_LUA: Final = """
-- KEYS[1] rows hash, KEYS[2] versions hash, KEYS[3..] board sorted sets
-- ARGV[1] ttl; ARGV[2] msgpack array of rows, each
--   [member, version (decimal string), payload, score per board set ('' removes)]
-- One packed argument instead of several per row: argument encoding on the client is the
-- dominant cost of large calls.
local ttl = tonumber(ARGV[1])
local rows = cmsgpack.unpack(ARGV[2])
local boards = #KEYS - 2
local won = 0
for _, row in ipairs(rows) do
  local member, version, payload = row[1], tonumber(row[2]), row[3]
  local wins = false
  local old = redis.call('HGET', KEYS[2], member)
  if not old then
    wins = true
  else
    local ov = tonumber(old)
    if version > ov then
      wins = true
    elseif version == ov then
      local prev = redis.call('HGET', KEYS[1], member)
      if (not prev) or redis.sha1hex(payload) > redis.sha1hex(prev) then
        wins = true
      end
    end
  end
  if wins then
    redis.call('HSET', KEYS[1], member, payload)
    redis.call('HSET', KEYS[2], member, row[2])
    for j = 1, boards do
      local score = row[3 + j]
      if score == '' then
        redis.call('ZREM', KEYS[2 + j], member)
      else
        redis.call('ZADD', KEYS[2 + j], score, member)
      end
    end
    won = won + 1
  end
end
for k = 1, #KEYS do
  redis.call('EXPIRE', KEYS[k], ttl)
end
return won
"""

MERGE_FIGURES_LUA: Final = """
-- KEYS[1] rows hash, KEYS[2] versions hash, KEYS[3] figures hash, KEYS[4..] board sorted sets
-- ARGV[1] ttl; ARGV[2] msgpack array of rows, each
--   [member, version (decimal string), payload, figures (lattice text), publish (0/1),
--    base (figures the writer knows are stored and included in its figures),
--    score per board set ('' removes)];
-- ARGV[3] the tie fields: comma-separated numeric JSON fields ordering two rows of one version
--   (greater first), before the SHA-1 of the payloads
-- The figures hash holds 'sequence|current|joined figures' per member: the join of every
-- figures text ever offered (mdp_cache.lattice, whose Python twin must agree), whether the
-- stored row holds all of it, and a counter of stored rows (the published version).
-- Returns a flat array: 1, row index, sequence for each stored row to publish (also for an
-- offer of the stored row itself: version, payload and figures all equal); 0, row index,
-- joined figures, stored row or false, stored version or false for each row whose writer
-- lacks something this hash holds (it hydrates from them and offers the row again).
local ttl = tonumber(ARGV[1])
local rows = cmsgpack.unpack(ARGV[2])
local boards = #KEYS - 3
local out = {}

local function parse(text)
  local terms, names = {}, {}
  for name, op, a, b in string.gmatch(text, '([^,%+%-@]+)([%+%-])([^@,]+)@([^,]+)') do
    terms[name] = {op, a, b}
    names[#names + 1] = name
  end
  return terms, names
end

-- Whether term n beats term o of the same name ('+': greater first, '-': smaller first;
-- then the smaller second).
local function beats(n, o)
  if n[1] ~= o[1] then
    return true
  end
  local na, oa = tonumber(n[2]), tonumber(o[2])
  if na ~= oa then
    if n[1] == '+' then
      return na > oa
    end
    return na < oa
  end
  return tonumber(n[3]) < tonumber(o[3])
end

local function join(stored, offered)
  if stored == '' or stored == offered then
    return offered
  end
  if offered == '' then
    return stored
  end
  local terms, names = parse(stored)
  local more, more_names = parse(offered)
  for _, name in ipairs(more_names) do
    local old = terms[name]
    if old == nil then
      names[#names + 1] = name
      terms[name] = more[name]
    elseif beats(more[name], old) then
      terms[name] = more[name]
    end
  end
  table.sort(names)
  local parts = {}
  for i, name in ipairs(names) do
    local t = terms[name]
    parts[i] = name .. t[1] .. t[2] .. '@' .. t[3]
  end
  return table.concat(parts, ',')
end

local tie_fields = {}
for name in string.gmatch(ARGV[3] or '', '[^,]+') do
  tie_fields[#tie_fields + 1] = name
end

-- 1 when payload a orders after payload b by the tie fields, -1 before, 0 undecided.
local function tie(a, b)
  if #tie_fields == 0 then
    return 0
  end
  local ok_a, x = pcall(cjson.decode, a)
  local ok_b, y = pcall(cjson.decode, b)
  if not (ok_a and ok_b and type(x) == 'table' and type(y) == 'table') then
    return 0
  end
  for _, name in ipairs(tie_fields) do
    local p, q = x[name], y[name]
    if type(p) == 'number' and type(q) == 'number' and p ~= q then
      if p > q then
        return 1
      end
      return -1
    end
  end
  return 0
end

for index, row in ipairs(rows) do
  local member, version, payload, figures = row[1], tonumber(row[2]), row[3], row[4]
  local meta = redis.call('HGET', KEYS[3], member)
  local seq, current, stored = 0, '1', ''
  if meta then
    local s, c, f = string.match(meta, '^(%d+)|([01])|(.*)$')
    seq, current, stored = tonumber(s), c, f
  end
  local joined
  if row[6] == stored then
    -- The writer's figures already include what is stored: their join is the offer itself.
    joined = figures
  else
    joined = join(stored, figures)
  end
  -- Whether the stored row misses figures (it did, or this offer brought new ones).
  local lagging = current == '0' or joined ~= stored
  local old = redis.call('HGET', KEYS[2], member)
  local wins, hydrate, again = false, false, false
  if joined ~= figures then
    hydrate = true
  elseif not old then
    wins = true
  else
    local ov = tonumber(old)
    if version > ov then
      wins = true
    elseif version == ov then
      if lagging then
        wins = true
      else
        local prev = redis.call('HGET', KEYS[1], member)
        if not prev then
          wins = true
        elseif prev == payload then
          -- The stored row itself, offered again (a flush sent again after its connection was
          -- lost midway): published again, as the lost attempt may have stored it unheard.
          again = seq > 0
        else
          local order = tie(payload, prev)
          if order ~= 0 then
            wins = order > 0
          else
            wins = redis.sha1hex(payload) > redis.sha1hex(prev)
          end
        end
      end
    else
      hydrate = lagging
    end
  end
  if wins then
    seq = seq + 1
    redis.call('HSET', KEYS[1], member, payload)
    redis.call('HSET', KEYS[2], member, row[2])
    redis.call('HSET', KEYS[3], member, seq .. '|1|' .. joined)
    for j = 1, boards do
      local score = row[6 + j]
      if score == '' then
        redis.call('ZREM', KEYS[3 + j], member)
      else
        redis.call('ZADD', KEYS[3 + j], score, member)
      end
    end
    if row[5] == 1 then
      out[#out + 1] = 1
      out[#out + 1] = index
      out[#out + 1] = seq
    end
  else
    if again and row[5] == 1 then
      out[#out + 1] = 1
      out[#out + 1] = index
      out[#out + 1] = seq
    end
    if joined ~= stored or not meta then
      local flag = '1'
      if lagging and old then
        flag = '0'
      end
      redis.call('HSET', KEYS[3], member, seq .. '|' .. flag .. '|' .. joined)
    end
    if hydrate then
      out[#out + 1] = 0
      out[#out + 1] = index
      out[#out + 1] = joined
      out[#out + 1] = redis.call('HGET', KEYS[1], member) or false
      out[#out + 1] = old or false
    end
  end
end
for k = 1, #KEYS do
  redis.call('EXPIRE', KEYS[k], ttl)
end
return out
"""

WINDOWS_PER_CALL: Final = 128
"""Symbols per trade-window script call (a flush holds a few trades per symbol)."""

APPEND_TRADES_LUA: Final = """
-- KEYS[3i-2], KEYS[3i-1], KEYS[3i]: the window list, identity set and figures of item i (one
--   hash tag per symbol, so on a Redis Cluster a call carries the symbols of one slot)
-- ARGV[1] msgpack array of [symbol, capacity, ttl, trades], trades each
--   [identity, size, timestamp_ms, price (decimal string), exchange]; ARGV[2] now (Unix s).
-- Window entries are 'seq:size:timestamp_ms:identity'. The figures are one msgpack array
-- (read and written whole: cheaper than hash fields) of seq, count, total, the latest trade
-- by time (timestamp, size, exchange, price), when the TTLs were last refreshed, and the
-- peaks: seqs and sizes of strictly decreasing size (a monotonic deque, a few entries) whose
-- first is the window maximum. A new window's seq starts at the newest timestamp of its first
-- batch x 1000, so seq only grows, even when the window was lost (a late print first in the
-- new window cannot pull it back).
local items = cmsgpack.unpack(ARGV[1])
local now = tonumber(ARGV[2])
local counted = 0
local function in_range(size, ts)
  -- WINDOW_MAX_SIZE, WINDOW_MAX_TIMESTAMP_MS: sums and seq stay exact doubles, and nothing
  -- out of range can make the script fail halfway.
  return size and ts and size >= 0 and size <= 1e15 and ts >= 0 and ts < 9e12
end
for i, item in ipairs(items) do
  local symbol, capacity, ttl, trades = item[1], tonumber(item[2]), tonumber(item[3]), item[4]
  local wkey, ikey, skey = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local raw = redis.call('GET', skey)
  local seq, count, total, lts, lsize, lexch, lprice, refreshed = nil, 0, 0, -1, 0, 0, '0', 0
  local pseq, psize = {}, {}
  if raw then
    local st = cmsgpack.unpack(raw)
    seq, count, total, lts, lsize, lexch, lprice, refreshed = st[1], st[2], st[3], st[4],
      st[5], st[6], st[7], st[8]
    pseq, psize = st[9], st[10]
  end
  if capacity < 1 then
    capacity = 1
  end
  if not seq then
    for _, t in ipairs(trades) do
      local size, ts = tonumber(t[2]), tonumber(t[3])
      if in_range(size, ts) and (not seq or ts * 1000 > seq) then
        seq = ts * 1000
      end
    end
  end
  local pushed = {}
  for _, t in ipairs(trades) do
    local identity = t[1]
    local size, ts = tonumber(t[2]), tonumber(t[3])
    if in_range(size, ts) and (identity == '' or redis.call('SADD', ikey, identity) == 1) then
      seq = seq + 1
      total = total + size
      pushed[#pushed + 1] = string.format('%d:%d:%d:%s', seq, size, ts, identity)
      while #psize > 0 and psize[#psize] <= size do
        psize[#psize] = nil
        pseq[#pseq] = nil
      end
      pseq[#pseq + 1] = seq
      psize[#psize + 1] = size
      if ts >= lts then
        lts, lsize, lexch, lprice = ts, size, t[5], t[4]
      end
    end
  end
  if #pushed > 0 then
    counted = counted + #pushed
    for s = 1, #pushed, 4000 do
      redis.call('RPUSH', wkey, unpack(pushed, s, math.min(s + 3999, #pushed)))
    end
    count = count + #pushed
    if count > capacity then
      local last_seq = 0
      for _, entry in ipairs(redis.call('LPOP', wkey, count - capacity)) do
        local a, b, identity = string.match(entry, '^(%d+):(%d+):%d+:(.*)$')
        total = total - tonumber(b)
        last_seq = tonumber(a)
        if identity ~= '' then
          redis.call('SREM', ikey, identity)
        end
      end
      count = capacity
      local first = 1
      while first <= #pseq and pseq[first] <= last_seq do
        first = first + 1
      end
      if first > 1 then
        local kept_seq, kept_size = {}, {}
        for j = first, #pseq do
          kept_seq[#kept_seq + 1] = pseq[j]
          kept_size[#kept_size + 1] = psize[j]
        end
        pseq, psize = kept_seq, kept_size
      end
    end
    -- The TTLs are refreshed when an eighth of them has passed, not on every flush.
    local refresh = now - refreshed >= ttl / 8
    if refresh then
      refreshed = now
    end
    redis.call('SET', skey, cmsgpack.pack({seq, count, total, lts, lsize, lexch, lprice,
      refreshed, pseq, psize}), 'KEEPTTL')
    if refresh then
      redis.call('EXPIRE', wkey, ttl)
      redis.call('EXPIRE', ikey, ttl)
      redis.call('EXPIRE', skey, ttl)
    end
  end
end
return counted
"""

_PACK: Final = msgspec.msgpack.Encoder().encode
_UNPACK: Final = msgspec.msgpack.Decoder().decode


def _text(payload: bytes) -> str:
    """Payloads travel as msgpack strings: the Lua cmsgpack of Redis reads no ``bin`` type."""
    return payload.decode("utf-8", "surrogateescape")


def _scores(scores: tuple[float | None, ...]) -> list[float | str]:
    return ["" if score is None else score for score in scores]


_GroupKey = tuple[str, str, tuple[str, ...], int]
_MergedKey = tuple[str, str, str, tuple[str, ...], int, tuple[str, ...]]


def _merged_replies(chunk: Sequence[PutMerged], reply: Sequence[object], applied: Applied) -> None:
    """Read one figures-script reply into ``applied`` (see ``MERGE_FIGURES_LUA``)."""
    at = 0
    while at < len(reply):
        index = int(reply[at + 1])  # type: ignore[call-overload] # an integer reply
        op = chunk[index - 1]
        if reply[at] == 1:
            sequence = int(reply[at + 2])  # type: ignore[call-overload] # an integer reply
            version = published_version(op.epoch, sequence)
            applied.accepted.append(Accepted(op.publish, op.payload, version))
            at += 3
            continue
        figures, payload, version_text = reply[at + 2], reply[at + 3], reply[at + 4]
        applied.refused.append(
            Refused(
                rows_key=op.rows_key,
                member=op.member,
                figures=figures.decode() if isinstance(figures, bytes) else str(figures),
                payload=payload if isinstance(payload, bytes) else None,
                version=int(version_text) if isinstance(version_text, bytes) else 0,
            )
        )
        at += 5


def _window_keys(symbol: str) -> tuple[str, str, str]:
    """A symbol's window list, identity set and figures (one hash tag: one cluster slot)."""
    return KEY_TT_WINDOW.of(symbol), KEY_TT_IDS.of(symbol), KEY_TT_STATS.of(symbol)


def _window_calls(windows: Sequence[AppendTrades], cluster: bool) -> list[list[AppendTrades]]:
    """The trade-window script calls: up to ``WINDOWS_PER_CALL`` symbols each.

    On a cluster each call holds the symbols of one slot (a script touches one slot there).
    """
    groups: dict[int, list[AppendTrades]] = defaultdict(list)
    for op in windows:
        groups[slot_of(KEY_TT_WINDOW.of(op.symbol)) if cluster else 0].append(op)
    return [
        group[start : start + WINDOWS_PER_CALL]
        for group in groups.values()
        for start in range(0, len(group), WINDOWS_PER_CALL)
    ]


BOARD_TOP_LUA: Final = """
-- KEYS[1] a board (sorted set), KEYS[2] its rows hash (one hash tag: one cluster slot)
-- ARGV[1] how many members. Returns member, score, row (nil if absent) for each, best first:
-- the ranks and their rows in one round trip, and of one instant. Under saturation a
-- composition's every round trip waits behind the flushes' scripts, for 0.1-0.5 s each.
local limit = tonumber(ARGV[1])
if not limit or limit < 1 then
  return {}
end
local ranked = redis.call('ZREVRANGE', KEYS[1], 0, limit - 1, 'WITHSCORES')
if #ranked == 0 then
  return {}
end
local members = {}
for i = 1, #ranked, 2 do
  members[#members + 1] = ranked[i]
end
local rows = redis.call('HMGET', KEYS[2], unpack(members))
local out = {}
for i = 1, #members do
  out[#out + 1] = members[i]
  out[#out + 1] = ranked[2 * i]
  out[#out + 1] = rows[i]
end
return out
"""

READ_WINDOWS_LUA: Final = """
-- KEYS[2i-1], KEYS[2i]: the window list and figures of symbol i (one hash tag per symbol).
-- Returns, per symbol, its packed figures, oldest entry and newest entry (nil where absent):
-- one call instead of three commands per symbol, which at a whole market's changed symbols
-- is most of a composition's client time.
local out = {}
for i = 1, #KEYS, 2 do
  out[#out + 1] = redis.call('GET', KEYS[i + 1])
  out[#out + 1] = redis.call('LINDEX', KEYS[i], 0)
  out[#out + 1] = redis.call('LINDEX', KEYS[i], -1)
end
return out
"""

READS_PER_CALL: Final = 500
"""Symbols per window-figures read call: about a millisecond of Redis time each."""


def _symbol_calls(symbols: Sequence[str], cluster: bool) -> list[list[str]]:
    """``symbols`` in read calls of up to ``READS_PER_CALL``; on a cluster, one slot each."""
    groups: dict[int, list[str]] = defaultdict(list)
    for symbol in symbols:
        groups[slot_of(KEY_TT_WINDOW.of(symbol)) if cluster else 0].append(symbol)
    return [
        group[start : start + READS_PER_CALL]
        for group in groups.values()
        for start in range(0, len(group), READS_PER_CALL)
    ]


def _window_item(op: AppendTrades) -> tuple[object, ...]:
    trades = [
        (trade.identity, trade.size, trade.timestamp_ms, repr(trade.price), trade.exchange)
        for trade in op.trades
    ]
    return (op.symbol, op.capacity, op.ttl, trades)


def _entry_timestamp(entry: bytes | None) -> int:
    """The timestamp of a window entry ``seq:size:timestamp_ms:identity``."""
    return 0 if entry is None else int(entry.split(b":", 3)[2])


def _figures(packed: bytes, oldest: bytes | None, newest: bytes | None) -> WindowStats:
    """A window's figures from its packed figures and its oldest and newest entries.

    Raises:
        ValueError: the figures are not what the script writes (also ``TypeError``,
            ``IndexError``, ``msgspec.DecodeError``).
    """
    seq, count, total, lts, lsize, lexch, lprice, _, _, peak_sizes = _UNPACK(packed)
    return WindowStats(
        seq=int(seq),
        count=int(count),
        total_volume=int(total),
        max_size=int(peak_sizes[0]) if peak_sizes else 0,
        first_timestamp_ms=_entry_timestamp(oldest),
        last_timestamp_ms=_entry_timestamp(newest),
        latest_timestamp_ms=int(lts),
        latest_size=int(lsize),
        latest_exchange=int(lexch),
        latest_price=float(lprice),
    )


def _sort_ops(
    pipe: Pipeline, ops: Sequence[StateOp]
) -> tuple[dict[_GroupKey, list[PutNewer]], dict[_MergedKey, list[PutMerged]], list[AppendTrades]]:
    """Group the script calls' operations; queue the plain commands at once, in order.

    Raises:
        UnknownStateOp: before anything is sent.
    """
    groups: dict[_GroupKey, list[PutNewer]] = defaultdict(list)
    merged: dict[_MergedKey, list[PutMerged]] = defaultdict(list)
    windows: list[AppendTrades] = []
    for op in ops:
        match op:
            case PutMerged():
                key = (
                    op.rows_key,
                    op.versions_key,
                    op.figures_key,
                    op.score_keys,
                    op.ttl,
                    op.tie_fields,
                )
                merged[key].append(op)
            case PutNewer():
                groups[(op.rows_key, op.versions_key, op.score_keys, op.ttl)].append(op)
            case AppendTrades():
                if op.trades:
                    windows.append(op)
            case SetValue():
                pipe.set(op.key, op.payload, ex=op.ttl)
            case KeepTop():
                _queue_keep_top(pipe, op)
            case _:
                unknown_op(op)
    return groups, merged, windows


def _queue_keep_top(pipe: Pipeline, op: KeepTop) -> None:
    """Queue a capped ranking update (plain Redis commands)."""
    if op.members:
        pipe.zadd(op.key, dict(op.members))
        pipe.zremrangebyrank(op.key, 0, -(op.cap + 1))
        pipe.expire(op.key, op.ttl)


class RedisState:
    """Applies state operations to MDC and answers board reads.

    Args:
        redis: The MDC client.
        clock: When the trade windows' TTLs were last refreshed (they are refreshed once an
            eighth of the TTL has passed, not on every write); the wall clock by default.
    """

    def __init__(self, redis: Redis, *, clock: Clock | None = None) -> None:
        self._redis = redis
        self._clock: Clock = clock or LiveClock()
        self._sha: str | None = None
        self._figures_sha: str | None = None
        self._windows_sha: str | None = None
        self._read_windows_sha: str | None = None
        self._cluster = is_cluster(redis)

    async def load_scripts(self) -> None:
        """Load the scripts (idempotent; called lazily by :meth:`apply` and :meth:`top`).

        Every SHA is set at once, after every script is loaded: a flush and a composition
        running side by side never see some scripts known and others not.
        """
        shas = [
            str(await self._redis.script_load(script))
            for script in (MERGE_ROWS_LUA, MERGE_FIGURES_LUA, APPEND_TRADES_LUA, READ_WINDOWS_LUA)
        ]
        self._sha, self._figures_sha, self._windows_sha, self._read_windows_sha = shas

    async def apply(self, ops: Sequence[StateOp], *, marks: Sequence[str] = ()) -> Applied:
        """Apply ``ops``, then set the ``marks`` keys: one pipeline, the marks last.

        Not a transaction: ``EXEC`` runs a whole flush at once (tens to hundreds of
        milliseconds at saturation) while every other client waits, the compositions' lease
        renewals and the other replicas' flushes included; a plain pipeline lets Redis serve
        them between its commands. Redis runs one connection's commands in order, so a batch
        is never marked applied before all of its state is written. A connection lost midway
        leaves part of the state written and the batch unmarked; applying it again (the
        client's retry, the broker's redelivery) ends where one application ends, since every
        operation is idempotent: newer wins, lattice joins, trade identities, capped sets.
        Trades without an identity are the exception: they would be counted twice.

        On a Redis Cluster each script call stays atomic (its keys share a hash tag) and the
        marks go in a second pipeline after the state's, whose nodes run in any order.
        """
        if not ops and not marks:
            return Applied()
        if self._sha is None:
            await self.load_scripts()
        try:
            return await self._send(ops, marks)
        except NoScriptError:
            await self.load_scripts()
            return await self._send(ops, marks)

    async def _send(self, ops: Sequence[StateOp], marks: Sequence[str]) -> Applied:
        assert self._sha is not None
        assert self._figures_sha is not None
        pipe = self._redis.pipeline(transaction=False)
        groups, merged, windows = _sort_ops(pipe, ops)
        # The changed set and the marks follow the state: on one Redis later in the same
        # pipeline, on a cluster in a later one (its nodes run in any order). A symbol is never
        # taken before its window holds the trades, and a batch never marked before its state
        # is written.
        last = self._redis.pipeline(transaction=False) if self._cluster else pipe
        self._queue_windows(pipe, last, windows)
        for (rows_key, versions_key, boards, ttl), rows in groups.items():
            for start in range(0, len(rows), ROWS_PER_CALL):
                packed = _PACK(
                    [
                        (row.member, str(row.version), _text(row.payload), *_scores(row.scores))
                        for row in rows[start : start + ROWS_PER_CALL]
                    ]
                )
                pipe.execute_command(
                    "EVALSHA",
                    self._sha,
                    2 + len(boards),
                    rows_key,
                    versions_key,
                    *boards,
                    ttl,
                    packed,
                )
        calls = self._queue_merged(pipe, merged)
        ttl_seen = KEY_SEEN_BATCH.ttl or 600
        for mark in marks:
            last.set(mark, b"1", ex=ttl_seen)
        replies = await pipe.execute()
        if last is not pipe:
            await last.execute()
        applied = Applied()
        for position, call in calls:
            _merged_replies(call, replies[position], applied)
        return applied

    def _queue_windows(
        self, pipe: Pipeline, last: Pipeline, windows: Sequence[AppendTrades]
    ) -> None:
        """Queue the trade-window script calls on ``pipe``, the changed set on ``last``.

        Every symbol with trades is marked changed, even when all its trades were already in
        the window: its statistics are then composed again, and the versioned widget write
        drops the unchanged document.
        """
        assert self._windows_sha is not None
        if not windows:
            return
        now_seconds = self._clock.now_ns() // 1_000_000_000  # when the window TTLs were refreshed
        for chunk in _window_calls(windows, self._cluster):
            keys = [key for op in chunk for key in _window_keys(op.symbol)]
            packed = _PACK([_window_item(op) for op in chunk])
            pipe.execute_command(
                "EVALSHA", self._windows_sha, len(keys), *keys, packed, now_seconds
            )
        dirty = KEY_TT_DIRTY.name()
        last.sadd(dirty, *sorted({op.symbol for op in windows}))
        last.expire(dirty, max(op.ttl for op in windows))

    def _queue_merged(
        self, pipe: Pipeline, merged: dict[_MergedKey, list[PutMerged]]
    ) -> list[tuple[int, list[PutMerged]]]:
        """Queue the figures-script calls; return each call's pipeline position and rows."""
        assert self._figures_sha is not None
        calls: list[tuple[int, list[PutMerged]]] = []
        for (rows_key, versions_key, figures_key, boards, ttl, ties), offers in merged.items():
            keys = (rows_key, versions_key, figures_key, *boards)
            for start in range(0, len(offers), ROWS_PER_CALL):
                call = offers[start : start + ROWS_PER_CALL]
                packed = _PACK(
                    [
                        (
                            offer.member,
                            str(offer.version),
                            _text(offer.payload),
                            offer.figures,
                            1 if offer.publish else 0,
                            offer.base,
                            *_scores(offer.scores),
                        )
                        for offer in call
                    ]
                )
                calls.append((len(pipe), call))
                pipe.execute_command(
                    "EVALSHA", self._figures_sha, len(keys), *keys, ttl, packed, ",".join(ties)
                )
        return calls

    async def seen(self, marks: Sequence[str]) -> set[str]:
        """Which ``marks`` are already set (one ``MGET``)."""
        if not marks:
            return set()
        values = await mget(self._redis, marks)
        return {mark for mark, value in zip(marks, values, strict=True) if value is not None}

    async def top(self, reads: Sequence[Read]) -> list[list[RankedMember]]:
        """Answer reads of every kind, in order.

        Board reads take one round trip together (``BOARD_TOP_LUA``: ranks and rows of one
        instant), a union read and a rows read one transaction each, a window-statistics
        read two round trips (take the changed, read them).
        """
        answers: list[list[RankedMember]] = [[] for _ in reads]
        boards = [(i, read) for i, read in enumerate(reads) if isinstance(read, TopRead)]
        if boards:
            found = await self._boards([read for _, read in boards])
            for (i, _), answer in zip(boards, found, strict=True):
                answers[i] = answer
        for i, read in enumerate(reads):
            if isinstance(read, UnionTopRead):
                answers[i] = await self._union(read)
            elif isinstance(read, WindowStatsRead):
                answers[i] = await self._window_stats(read)
            elif isinstance(read, RowsRead):
                answers[i] = await self._rows(read)
        return answers

    async def _rows(self, read: RowsRead) -> list[RankedMember]:
        """Every row with its version: one ``MULTI`` on one Redis.

        On a cluster a plain pipeline (redis-py's asyncio cluster transactions run each
        command on a thread of its own and can hang): a merge landing between the two reads
        pairs a row with its previous version for that one read, which the next read mends.
        """
        pipe = self._redis.pipeline(transaction=not self._cluster)
        pipe.hgetall(read.rows_key)
        pipe.hgetall(read.versions_key)
        rows, versions = await pipe.execute()
        return [
            RankedMember(member.decode(), float(versions.get(member, 0)), payload)
            for member, payload in sorted(rows.items())
        ]

    async def _union(self, read: UnionTopRead) -> list[RankedMember]:
        if not read.keys or read.limit <= 0:
            return []
        if self._cluster:
            # ZUNION (one command, no scratch key): a cluster transaction cannot route
            # ZUNIONSTORE's variable keys (redis-py), and all buckets share one hash tag anyway.
            union = cast(
                "list[tuple[bytes, float]]",
                await self._redis.zunion(list(read.keys), aggregate="MAX", withscores=True),
            )
            top = sorted(union, key=lambda pair: (pair[1], pair[0]), reverse=True)[: read.limit]
            return [RankedMember(member.decode(), float(score), member) for member, score in top]
        scratch = KEY_TT_UNION.name()
        pipe = self._redis.pipeline(transaction=True)
        pipe.zunionstore(scratch, list(read.keys), aggregate="MAX")
        pipe.zrevrange(scratch, 0, read.limit - 1, withscores=True)
        pipe.delete(scratch)
        _, ranked, _ = await pipe.execute()
        return [RankedMember(member.decode(), float(score), member) for member, score in ranked]

    async def _window_stats(self, read: WindowStatsRead) -> list[RankedMember]:
        """Take changed symbols (``SPOP``), then read their figures and window ends.

        Two steps, not one script: the figures live in each symbol's slot, the changed set in
        its own. A composition lost between them (the process died) leaves those symbols
        unpublished until they trade again, as a composition lost after its read always did.
        The figures are read by ``READ_WINDOWS_LUA``, a few hundred symbols per call.
        """
        if read.limit <= 0:
            return []
        popped = await self._redis.spop(KEY_TT_DIRTY.name(), read.limit)
        symbols = sorted(member.decode() for member in cast("list[bytes]", popped or []))
        if not symbols:
            return []
        if self._read_windows_sha is None:
            await self.load_scripts()
        calls = _symbol_calls(symbols, self._cluster)
        try:
            replies = await self._read_windows(calls)
        except NoScriptError:
            await self.load_scripts()
            replies = await self._read_windows(calls)
        taken = [
            (symbol, flat[3 * n], flat[3 * n + 1], flat[3 * n + 2])
            for call, flat in zip(calls, replies, strict=True)
            for n, symbol in enumerate(call)
        ]
        answers: list[RankedMember] = []
        for symbol, packed, oldest, newest in sorted(taken):
            if packed is None or oldest is None:
                continue  # expired since it was marked
            try:
                figures = _figures(packed, oldest, newest)
            except (ValueError, IndexError, TypeError, msgspec.DecodeError):
                continue  # not written by the script: one bad symbol must not hide the rest
            answers.append(RankedMember(symbol, float(figures.seq), _PACK(figures)))
        return answers

    async def _read_windows(self, calls: Sequence[Sequence[str]]) -> list[list[bytes | None]]:
        """One ``READ_WINDOWS_LUA`` call per group of symbols, pipelined."""
        pipe = self._redis.pipeline(transaction=False)
        for call in calls:
            keys = [key for symbol in call for key in _window_keys(symbol)[::2]]
            pipe.execute_command("EVALSHA", self._read_windows_sha, len(keys), *keys)
        return cast("list[list[bytes | None]]", await pipe.execute())

    async def _boards(self, reads: Sequence[TopRead]) -> list[list[RankedMember]]:
        """Each board's top members with their rows, in one round trip for every board.

        One ``BOARD_TOP_LUA`` call per board, pipelined; members whose row is gone are left
        out.
        """
        pipe = self._redis.pipeline(transaction=False)
        for read in reads:
            pipe.eval(BOARD_TOP_LUA, 2, read.board_key, read.rows_key, read.limit)
        replies = cast("list[list[bytes | None]]", await pipe.execute())
        return [
            [
                RankedMember(member.decode(), float(score), payload)
                for member, score, payload in zip(flat[0::3], flat[1::3], flat[2::3], strict=True)
                if member is not None and score is not None and payload is not None
            ]
            for flat in replies
        ]

    async def hold_lease(self, key: str, holder: str, ttl_ms: int) -> bool:
        """Take the lease ``key`` if free, renew it if ``holder`` has it (atomic, one call)."""
        return bool(await self._redis.eval(LEASE_LUA, 1, key, holder, ttl_ms))
