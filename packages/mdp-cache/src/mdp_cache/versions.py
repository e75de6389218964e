"""Which of two versioned widget documents wins: the write rule, without any I/O.

Several processor replicas write the same per-symbol documents, so a versioned write replaces
the stored document only if its version is greater, or equal with a greater SHA-1 of the
payload (the rule of :class:`~mdp_cache.ops.PutNewer`): any order and duplication of writes
converge on one document. The Redis script of :class:`mdp_cache.widgets.WidgetWriter` applies
the rule in Redis; this module is the same rule for code that must not import a Redis client
(the offline replay of :mod:`mdp_analyzers.replay`, emulators, memory writers).
"""

from __future__ import annotations

import hashlib

__all__ = ["supersedes"]


def supersedes(version: int, payload: bytes, stored: tuple[int, bytes | None] | None) -> bool:
    """Whether a write of ``version``/``payload`` replaces ``stored`` (its version and bytes).

    The rule of the versioned script, for the writers that cannot run it (emulators, memory).
    """
    if stored is None:
        return True
    old_version, old_payload = stored
    if version != old_version:
        return version > old_version
    if old_payload is None:
        return True
    return _sha1(payload) > _sha1(old_payload)


def _sha1(payload: bytes) -> str:
    return hashlib.sha1(payload, usedforsecurity=False).hexdigest()
