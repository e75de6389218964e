"""Bounded per-symbol series in WDC: today's one-minute bars, one JSON element per minute.

A ``series`` feed is a Redis list, newest first, whose elements are JSON objects starting with
three integers the merge rule reads: ``t`` (the minute's start, ms), ``d`` (the trading day as
``YYYYMMDD``) and ``n`` (the element's version). Several processor replicas, duplicated and
reordered deliveries all write the same minutes, so every write obeys one rule, which makes
the stored series a function of the *set* of writes, whatever their order or repetition:

* only the newest trading day is kept: a write of a later day empties the series first, a
  write of an earlier day is dropped;
* one element per minute: a write for a stored minute replaces it only if its version is
  greater, or equal with a greater SHA-1 of its bytes (the rule of
  :class:`~mdp_cache.ops.PutNewer`); an equal payload is a no-op and is not published again;
* at most ``max_len`` minutes, the newest: a full series drops a write older than all it holds.

:data:`SERIES_MERGE_LUA` applies a whole flush in one script call; :func:`merge_element` is the
same rule in Python (the emulator path, the offline runner and the property tests' model).
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

__all__ = ["SERIES_MERGE_LUA", "SeriesFields", "merge_element", "series_fields"]

SERIES_MERGE_LUA: Final = """
-- KEYS: series names (one per element, repeats allowed)
-- ARGV[1]: msgpack array of [element, cap, ttl, publish], one per key;
-- publish: 0 none, +1 PUBLISH (every subscriber), +2 SPUBLISH (the shard of the name)
-- Returns how many elements were stored (and published when asked).
local items = cmsgpack.unpack(ARGV[1])
local PATTERN = {t = '"t":(%-?%d+)', d = '"d":(%-?%d+)', n = '"n":(%-?%d+)'}
local function field(s, name)
  return tonumber(string.match(s, PATTERN[name]))
end
local written = 0
for i, item in ipairs(items) do
  local key, payload, cap, ttl = KEYS[i], item[1], item[2], item[3]
  local t, d, n = field(payload, 't'), field(payload, 'd'), field(payload, 'n')
  local wins = t ~= nil and d ~= nil and n ~= nil
  local head, grew = nil, false
  if wins then
    head = redis.call('LINDEX', key, 0)
    if head then
      local hd = field(head, 'd')
      if hd == nil or hd < d then
        redis.call('DEL', key)
        head = nil
      elseif hd > d then
        wins = false
      end
    end
  end
  if wins then
    -- The pivot: the first element (newest first) of this minute or an older one.
    local len, index, pivot, pt = 0, nil, nil, nil
    if head then
      local ht = field(head, 't')
      if ht == nil or ht <= t then
        -- Nearly every write: the minute in progress, or the next one. The head decides.
        index, pivot, pt = 0, head, ht
      else
        -- A late write of an older minute: look further down, a chunk at a time.
        len = redis.call('LLEN', key)
        local seen = 1
        while seen < len and not pivot do
          local chunk = redis.call('LRANGE', key, seen, seen + 15)
          if #chunk == 0 then
            break
          end
          for j, element in ipairs(chunk) do
            local et = field(element, 't')
            if et == nil or et <= t then
              index, pivot, pt = seen + j - 1, element, et
              break
            end
          end
          seen = seen + #chunk
        end
      end
    end
    if pivot and pt == t then
      local pn = field(pivot, 'n') or -1
      if n > pn or (n == pn and redis.sha1hex(payload) > redis.sha1hex(pivot)) then
        redis.call('LSET', key, index, payload)
      else
        wins = false
      end
    elseif pivot then
      if index == 0 then
        redis.call('LPUSH', key, payload)
      else
        redis.call('LINSERT', key, 'BEFORE', pivot, payload)
      end
      grew = true
    elseif len < cap then
      redis.call('RPUSH', key, payload)
    else
      wins = false
    end
  end
  if wins then
    if grew then
      redis.call('LTRIM', key, 0, cap - 1)
    end
    redis.call('EXPIRE', key, ttl)
    if item[4] % 2 == 1 then
      redis.call('PUBLISH', key, payload)
    end
    if item[4] >= 2 then
      redis.call('SPUBLISH', key, payload)
    end
    written = written + 1
  end
end
return written
"""

_FIELD: Final = {name: re.compile(rb'"' + name + rb'":(-?\d+)') for name in (b"t", b"d", b"n")}

SeriesFields = tuple[int, int, int]
"""The ``(t, d, n)`` of an element: minute start (ms), trading day (YYYYMMDD), version."""


def series_fields(element: bytes) -> SeriesFields | None:
    """The merge fields of an element, or ``None`` when one is missing (never stored)."""
    found = [_FIELD[name].search(element) for name in (b"t", b"d", b"n")]
    if any(match is None for match in found):
        return None
    t, d, n = (int(match.group(1)) for match in found if match is not None)
    return t, d, n


def _sha1(payload: bytes) -> str:
    return hashlib.sha1(payload, usedforsecurity=False).hexdigest()


def merge_element(elements: list[bytes], payload: bytes, cap: int) -> bool:
    """Apply one write to ``elements`` (newest first) in place, as the script does.

    Returns:
        Whether the element was stored (the script then publishes it).
    """
    fields = series_fields(payload)
    if fields is None:
        return False
    t, d, n = fields
    head = series_fields(elements[0]) if elements else None
    if head is not None and head[1] > d:
        return False
    if elements and (head is None or head[1] < d):
        elements.clear()
    index = next(
        (i for i, e in enumerate(elements) if (s := series_fields(e)) is None or s[0] <= t),
        len(elements),
    )
    stored = series_fields(elements[index]) if index < len(elements) else None
    if stored is not None and stored[0] == t:
        wins = n > stored[2] or (n == stored[2] and _sha1(payload) > _sha1(elements[index]))
        if wins:
            elements[index] = payload
        return wins
    if index >= cap:
        return False
    elements.insert(index, payload)
    del elements[cap:]
    return True
