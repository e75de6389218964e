"""Board deltas: after a snapshot, a board travels as the rows that changed.

A board document (``scanner:top_gainers``...) is republished whole about once a second, yet
between two publications most of its rows are the same bytes. For the feeds whose catalogue
entry names a ``delta_key``, the hub keeps the last document it relayed, numbers every
publication of the feed (``seq``) and encodes, once for every client, the change from the
previous one:

``{"set": {field: value}, "drop": [field], "order": [key...], "rows": {key: row},
"patch": {key: {field: value}}, "unset": {key: [field]}}``, sent as
``{"op":"delta","feed":...,"seq":n,"base":n-1,"data":<that>}``

* ``set``/``drop``: top-level fields (other than ``rows``) that changed or disappeared;
* ``order``: the row keys of the new document in order, present only when the keys or their
  order changed (a row that left the board is simply not in it);
* ``rows``: every row, by key, that was not on the previous board, whole;
* ``patch``: for a row on both boards whose content changed, the fields whose value changed or
  that appeared (most rows of a live board change every second, but only in a few of their
  dozens of fields: price, volume, the figures that follow them);
* ``unset``: for such a row, the fields that disappeared.

Applying it (:func:`apply_delta`, and the dashboard's ``applyDelta``) to the document of
``base`` gives exactly the document of ``seq``. A document that is not a JSON object with a
``rows`` list of objects carrying distinct string keys has no delta: clients get it whole.

**Projections.** A client that reads only a few fields of each row subscribes with ``fields``:
it then follows the board's *projection* (:func:`project`: every row keeps only the named
fields and its key, top-level fields untouched), numbered and diffed by a tracker of its own
(``BoardTracker(key, fields)``), so a delta applied to the projected base gives exactly the
projected next document, and a field the page never reads never travels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import msgspec

__all__ = ["BoardTracker", "apply_delta", "encode_delta", "project", "project_payload"]

_DECODE: Final = msgspec.json.Decoder()
_ENCODE: Final = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class _Board:
    """A board split for diffing: top-level fields (encoded), rows by key (encoded), order."""

    head: dict[str, bytes]
    rows: dict[str, bytes]
    order: list[str]
    fields: dict[str, dict[str, bytes]]


def project(document: Any, key: str, fields: frozenset[str]) -> Any:
    """``document`` with every row keeping only ``fields`` and ``key`` (in the row's order).

    Only a JSON object's ``rows`` list is touched: its top-level fields, rows that are not
    objects, and anything that is not such an object come back as they are. A named field a
    row does not carry is simply absent.
    """
    if not isinstance(document, dict):
        return document
    rows = document.get("rows")
    if not isinstance(rows, list):
        return document
    projected = [
        {f: v for f, v in row.items() if f == key or f in fields} if isinstance(row, dict) else row
        for row in rows
    ]
    return {**document, "rows": projected}


def project_payload(payload: bytes, key: str, fields: frozenset[str] | None) -> bytes:
    """The projection of an encoded board (:func:`project`).

    The bytes come back as they are when ``fields`` is None or the payload is not JSON (it is
    relayed, not judged, here).
    """
    if fields is None:
        return payload
    try:
        document = _DECODE.decode(payload)
    except (msgspec.DecodeError, RecursionError):
        return payload
    return _ENCODE.encode(project(document, key, fields))


def _split(
    payload: bytes, key: str, fields: frozenset[str] | None = None
) -> tuple[bytes, _Board | None]:
    """The payload (projected on ``fields``, if given) and its split (None: no delta)."""
    try:
        document = _DECODE.decode(payload)
    except (msgspec.DecodeError, RecursionError):
        return payload, None
    if fields is not None:
        document = project(document, key, fields)
        payload = _ENCODE.encode(document)
    return payload, _board(document, key)


def _board(document: Any, key: str) -> _Board | None:
    if not isinstance(document, dict):
        return None
    rows = document.get("rows")
    if not isinstance(rows, list):
        return None
    by_key: dict[str, bytes] = {}
    fields: dict[str, dict[str, bytes]] = {}
    order: list[str] = []
    for row in rows:
        if not isinstance(row, dict):
            return None
        name = row.get(key)
        if not isinstance(name, str) or name in by_key:
            return None
        by_key[name] = _ENCODE.encode(row)
        fields[name] = {field: _ENCODE.encode(value) for field, value in row.items()}
        order.append(name)
    head = {field: _ENCODE.encode(value) for field, value in document.items() if field != "rows"}
    return _Board(head, by_key, order, fields)


def _object(pairs: list[tuple[str, bytes]]) -> bytes:
    """A JSON object from already-encoded values."""
    return b"{" + b",".join(_ENCODE.encode(name) + b":" + value for name, value in pairs) + b"}"


def encode_delta(old: _Board, new: _Board) -> bytes:
    """The delta from ``old`` to ``new``, as JSON."""
    parts: list[bytes] = []
    changed = [f for f, value in new.head.items() if old.head.get(f) != value]
    if changed:
        fields = b",".join(_ENCODE.encode(f) + b":" + new.head[f] for f in changed)
        parts.append(b'"set":{' + fields + b"}")
    dropped = [f for f in old.head if f not in new.head]
    if dropped:
        parts.append(b'"drop":' + _ENCODE.encode(dropped))
    if new.order != old.order:
        parts.append(b'"order":' + _ENCODE.encode(new.order))
    fresh: list[tuple[str, bytes]] = []
    patches: list[tuple[str, bytes]] = []
    unsets: list[tuple[str, bytes]] = []
    for name in new.order:
        before = old.rows.get(name)
        if before == new.rows[name]:
            continue
        if before is None:
            fresh.append((name, new.rows[name]))
            continue
        was, now = old.fields[name], new.fields[name]
        patch = [(f, value) for f, value in now.items() if was.get(f) != value]
        if patch:
            patches.append((name, _object(patch)))
        gone = [f for f in was if f not in now]
        if gone:
            unsets.append((name, _ENCODE.encode(gone)))
    parts.append(b'"rows":' + _object(fresh))
    if patches:
        parts.append(b'"patch":' + _object(patches))
    if unsets:
        parts.append(b'"unset":' + _object(unsets))
    return b"{" + b",".join(parts) + b"}"


class BoardTracker:
    """The publications of one board feed as one hub relays them: numbered, diffed once.

    Args:
        key: The row field that identifies a row (the catalogue's ``delta_key``).
        fields: Follow the board's projection on these row fields (:func:`project`); None:
            the whole board.
    """

    def __init__(self, key: str, fields: frozenset[str] | None = None) -> None:
        self._key = key
        self.fields = fields
        self._board: _Board | None = None
        #: The last publication as published (what a snapshot read is compared with).
        self.payload: bytes | None = None
        #: The last publication as this tracker's clients get it whole (projected, if so).
        self.document: bytes | None = None
        #: Number of the last publication relayed (0: none yet).
        self.seq = 0

    def advance(self, payload: bytes) -> bytes | None:
        """Take the next publication; return its delta, or None (it goes whole).

        The whole document to send is then :attr:`document` (the payload, or its projection).
        """
        document, board = _split(payload, self._key, self.fields)
        self.seq += 1
        previous, self._board = self._board, board
        self.payload, self.document = payload, document
        if previous is None or board is None:
            return None
        return encode_delta(previous, board)


def apply_delta(document: dict[str, Any], delta: dict[str, Any], key: str) -> dict[str, Any]:
    """The document a delta turns ``document`` into (the client's rule, for tests and tools)."""
    result = {f: v for f, v in document.items() if f not in delta.get("drop", ())}
    result.update(delta.get("set", {}))
    old_rows = {row[key]: row for row in document.get("rows", [])}
    order = delta.get("order", [row[key] for row in document.get("rows", [])])
    fresh, patches, unsets = delta.get("rows", {}), delta.get("patch", {}), delta.get("unset", {})
    rows: list[dict[str, Any]] = []
    for name in order:
        if name in fresh:
            rows.append(fresh[name])
            continue
        gone = unsets.get(name, ())
        row = {f: v for f, v in old_rows[name].items() if f not in gone}
        row.update(patches.get(name, {}))
        rows.append(row)
    result["rows"] = rows
    return result
