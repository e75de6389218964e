"""Per-user watchlists (several named lists of symbols) and the saved dashboard layout.

Sizes are bounded (settings ``watchlist_max_lists`` and ``watchlist_max_symbols``), symbols are
normalised to upper case and checked against a strict pattern, and the layout is an opaque
JSON object of bounded size that the dashboard owns (columns, sorts, filters, followed symbol).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from mdp_scp.schema import layouts, watchlists

__all__ = ["MAX_LAYOUT_BYTES", "Watchlist", "WatchlistError", "Watchlists"]

MAX_LAYOUT_BYTES: Final = 8 * 1024
_SYMBOL: Final = re.compile(r"[A-Z][A-Z0-9.\-]{0,14}")
_NAME: Final = re.compile(r"[^\x00-\x1f\x7f]{1,60}")


class WatchlistError(ValueError):
    """A watchlist or layout that breaks a rule (size, name, symbol); the message says which."""


@dataclass(frozen=True, slots=True)
class Watchlist:
    """One named list of symbols."""

    name: str
    symbols: tuple[str, ...]

    def public(self) -> dict[str, Any]:
        """The JSON form."""
        return {"name": self.name, "symbols": list(self.symbols)}


class Watchlists:
    """Reads and writes watchlists and layouts within the configured limits."""

    def __init__(self, max_lists: int, max_symbols: int) -> None:
        self.max_lists = max_lists
        self.max_symbols = max_symbols

    def clean(self, name: str, symbols: list[str]) -> Watchlist:
        """Validate and normalise (upper case, no duplicates, order kept).

        Raises:
            WatchlistError: on a bad name, a bad symbol or too many symbols.
        """
        name = name.strip()
        if not _NAME.fullmatch(name):
            raise WatchlistError("a watchlist name has 1 to 60 printable characters")
        if len(symbols) > self.max_symbols:
            raise WatchlistError(f"a watchlist holds at most {self.max_symbols} symbols")
        seen: dict[str, None] = {}
        for raw in symbols:
            symbol = raw.strip().upper()
            if not _SYMBOL.fullmatch(symbol):
                raise WatchlistError(f"{raw[:20]!r} is not a symbol")
            seen[symbol] = None
        return Watchlist(name, tuple(seen))

    async def of(self, conn: AsyncConnection, user_id: int) -> list[Watchlist]:
        """The user's lists in their order."""
        query = (
            select(watchlists.c.name, watchlists.c.symbols)
            .where(watchlists.c.user_id == user_id)
            .order_by(watchlists.c.position, watchlists.c.id)
        )
        return [
            Watchlist(row["name"], tuple(row["symbols"]))
            for row in (await conn.execute(query)).mappings()
        ]

    async def put(
        self, conn: AsyncConnection, user_id: int, watchlist: Watchlist, now: float
    ) -> bool:
        """Create or replace a list; True when it was created.

        Raises:
            WatchlistError: when a new list would exceed ``max_lists``.
        """
        changed = await conn.execute(
            update(watchlists)
            .where(watchlists.c.user_id == user_id, watchlists.c.name == watchlist.name)
            .values(symbols=list(watchlist.symbols), updated_at=now)
        )
        if changed.rowcount:
            return False
        count = int(
            (
                await conn.execute(select(func.count()).where(watchlists.c.user_id == user_id))
            ).scalar_one()
        )
        if count >= self.max_lists:
            raise WatchlistError(f"a user keeps at most {self.max_lists} watchlists")
        await conn.execute(
            insert(watchlists).values(
                user_id=user_id,
                name=watchlist.name,
                symbols=list(watchlist.symbols),
                position=count,
                updated_at=now,
            )
        )
        return True

    async def remove(self, conn: AsyncConnection, user_id: int, name: str) -> bool:
        """Delete a list; False when there was none."""
        result = await conn.execute(
            delete(watchlists).where(watchlists.c.user_id == user_id, watchlists.c.name == name)
        )
        return bool(result.rowcount)

    async def layout(self, conn: AsyncConnection, user_id: int) -> dict[str, Any]:
        """The saved layout, or ``{}``."""
        row = (
            await conn.execute(select(layouts.c.layout).where(layouts.c.user_id == user_id))
        ).first()
        return dict(row[0]) if row is not None else {}

    async def save_layout(
        self, conn: AsyncConnection, user_id: int, layout: dict[str, Any], now: float
    ) -> None:
        """Replace the saved layout.

        Raises:
            WatchlistError: when it is larger than :data:`MAX_LAYOUT_BYTES`.
        """
        if len(json.dumps(layout)) > MAX_LAYOUT_BYTES:
            raise WatchlistError(f"a layout is at most {MAX_LAYOUT_BYTES} bytes of JSON")
        await conn.execute(delete(layouts).where(layouts.c.user_id == user_id))
        await conn.execute(insert(layouts).values(user_id=user_id, layout=layout, updated_at=now))
