"""Which feed names a client may read: the catalogue decides what exists, the token who.

Two independent gates, both required:

1. **Catalogue.** A requested name must be a concrete name of a :class:`~mdp_cache.keys.Feed`
   (``quote:AAPL``) or exactly the pattern of a parametrised feed (``quote:*``). Anything else
   (internal ``mdp:`` keys, MDC keys, arbitrary globs such as ``*`` or ``q*``) is refused, so no
   token, however broad, reaches beyond widget feeds.
2. **Grant.** The token lists feed patterns (``scanner:*``, ``quote:*``, ``*``); a requested name
   is allowed when one of them matches it as a glob where ``*`` matches any text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from mdp_cache.keys import ALL_FEEDS, INTERNAL_PREFIX, Feed, feed_for
from mdp_wds.protocol import ErrorCode

__all__ = ["FeedRef", "FeedRefused", "Grant", "resolve_feed"]

_PATTERNS: dict[str, Feed] = {feed.pattern: feed for feed in ALL_FEEDS if feed.parametrized}


@dataclass(frozen=True, slots=True)
class FeedRef:
    """A requested feed that exists in the catalogue.

    Attributes:
        name: The name as subscribed (a concrete name or a pattern such as ``quote:*``).
        feed: Its catalogue entry (shape, TTL, cap).
        is_pattern: Whether it names every feed of a parametrised template.
    """

    name: str
    feed: Feed
    is_pattern: bool


class FeedRefused(Exception):
    """A requested name that is not served; ``code`` is the protocol error code."""

    def __init__(self, code: ErrorCode, name: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.name = name
        self.message = message


def resolve_feed(name: str) -> FeedRef:
    """Map a requested name to its catalogue feed.

    Raises:
        FeedRefused: ``forbidden_feed`` for internal keys, ``unknown_feed`` for any other name
            outside the catalogue.
    """
    if name.startswith(INTERNAL_PREFIX):
        raise FeedRefused(ErrorCode.FORBIDDEN_FEED, name, f"{name!r} is internal, not a feed")
    if "*" in name:
        pattern_feed = _PATTERNS.get(name)
        if pattern_feed is None:
            known = ", ".join(sorted(_PATTERNS))
            raise FeedRefused(
                ErrorCode.UNKNOWN_FEED, name, f"{name!r} is not a feed pattern; known: {known}"
            )
        return FeedRef(name, pattern_feed, is_pattern=True)
    feed = feed_for(name)
    if feed is None:
        raise FeedRefused(ErrorCode.UNKNOWN_FEED, name, f"{name!r} is not a feed")
    return FeedRef(name, feed, is_pattern=False)


@lru_cache(maxsize=1_024)
def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


@dataclass(frozen=True, slots=True)
class Grant:
    """The feed patterns a session may read (from its token, or ``*`` for the dev key)."""

    patterns: tuple[str, ...]

    @classmethod
    def of(cls, patterns: Iterable[str]) -> Grant:
        """A grant of the given patterns (empty strings ignored)."""
        return cls(tuple(p for p in patterns if p))

    def allows(self, name: str) -> bool:
        """Whether a requested name (concrete or pattern) is covered by one grant pattern.

        A pattern request (``quote:*``) needs a grant that covers the pattern itself
        (``quote:*`` or ``*``); ``quote:AAPL`` alone does not grant ``quote:*``.
        """
        return any(_glob(pattern).fullmatch(name) for pattern in self.patterns)

    def check(self, ref: FeedRef) -> None:
        """Raise when the grant does not cover ``ref``.

        Raises:
            FeedRefused: ``forbidden_feed``.
        """
        if not self.allows(ref.name):
            raise FeedRefused(
                ErrorCode.FORBIDDEN_FEED, ref.name, f"the token does not grant {ref.name!r}"
            )
