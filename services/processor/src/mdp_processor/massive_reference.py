"""Reference data from the Massive REST API, for the MDC reference cache.

The Massive client is synchronous (urllib3), so every call runs in a worker thread
(``asyncio.to_thread``): a slow or failing vendor never freezes the event loop, which is what
made the earlier implementation crawl at ~80 events/s on a cold cache.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from massive import RESTClient

from mdp_cache.records import DailyBar
from mdp_cache.reference import daily_bar_from_agg, grouped_daily_bars

__all__ = ["MassiveReferenceSource"]


class _OnItsHostClient(RESTClient):  # type: ignore[misc] # massive ships no type hints
    """The Massive client, refusing a request path that would leave the configured host.

    The client pages by appending a response's ``next_url`` path to its base URL, key in the
    headers: a path not starting with ``/`` (``@other.host/x``, ``.other.host/x``) changes the
    URL's host, and the key would go there.
    """

    def _get(self, path: str, *args: Any, **kwargs: Any) -> Any:
        if not path.startswith("/"):
            msg = f"refused a Massive request path off the configured host: {path[:80]!r}"
            raise ValueError(msg)
        return super()._get(path, *args, **kwargs)


class MassiveReferenceSource:
    """A :class:`~mdp_cache.reference.BulkReferenceSource` over Massive REST.

    Also a :class:`~mdp_cache.reference.SlotVolumeSource`: 5-minute aggregates for the
    time-of-day volume profiles.

    Args:
        api_key: The Massive API key.
        base_url: The REST base URL (the simulator's on loopback in tests and the demo).
        timeout_seconds: Connect and read timeout of one request.
    """

    def __init__(self, api_key: str, base_url: str, *, timeout_seconds: float = 10.0) -> None:
        self._client = _OnItsHostClient(
            api_key=api_key,
            base=base_url,
            connect_timeout=timeout_seconds,
            read_timeout=timeout_seconds,
            retries=1,
        )

    async def daily_bars(self, symbol: str, start: date, end: date) -> Sequence[DailyBar]:
        """Daily bars of ``symbol`` in ``[start, end]`` (one paginated request, in a thread)."""
        return await asyncio.to_thread(self._daily_bars, symbol, start, end)

    async def free_float(self, symbol: str) -> int | None:
        """The first free-float row of ``symbol`` (in a thread)."""
        return await asyncio.to_thread(self._free_float, symbol)

    async def slot_volumes(self, symbol: str, start: date, end: date) -> Sequence[tuple[int, int]]:
        """``(start_ms, volume)`` of ``symbol``'s minute aggregates in ``[start, end]``.

        ``/v2/aggs/ticker/{T}/range/5/minute/{from}/{to}``, paginated, in a thread: the
        history behind its time-of-day volume profile (one bar per 5-minute slot, a fifth of
        the rows of minute bars).
        """
        return await asyncio.to_thread(self._slot_volumes, symbol, start, end)

    async def grouped_daily(self, day: date) -> Mapping[str, DailyBar]:
        """Every ticker's daily bar of ``day`` (one grouped-daily request, in a thread)."""
        return await asyncio.to_thread(self._grouped_daily, day)

    async def free_floats(self) -> Mapping[str, int]:
        """Every ticker's free float (paginated, in a thread)."""
        return await asyncio.to_thread(self._free_floats)

    def _grouped_daily(self, day: date) -> dict[str, DailyBar]:
        # The raw body: the SDK's models cost 0.8 s of CPU per day at 10,000 symbols.
        answer = self._client.get_grouped_daily_aggs(day, adjusted=True, raw=True)
        body = getattr(answer, "data", None)
        if not isinstance(body, bytes):
            raise ValueError("grouped-daily: the client returned no response body")
        return grouped_daily_bars(body)

    def _free_floats(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for row in self._client.list_stocks_floats(limit=5_000):
            ticker, value = getattr(row, "ticker", None), getattr(row, "free_float", None)
            if isinstance(ticker, str) and isinstance(value, int | float) and value > 0:
                found[ticker] = int(value)
        return found

    def _daily_bars(self, symbol: str, start: date, end: date) -> list[DailyBar]:
        bars: list[DailyBar] = []
        for agg in self._client.list_aggs(
            symbol, 1, "day", start, end, adjusted=True, sort="asc", limit=50_000
        ):
            bar = daily_bar_from_agg(_agg_row(agg))
            if bar is not None:
                bars.append(bar)
        return bars

    def _slot_volumes(self, symbol: str, start: date, end: date) -> list[tuple[int, int]]:
        found: list[tuple[int, int]] = []
        for agg in self._client.list_aggs(
            symbol, 5, "minute", start, end, adjusted=True, sort="asc", limit=50_000
        ):
            stamp, volume = getattr(agg, "timestamp", None), getattr(agg, "volume", None)
            if isinstance(stamp, int | float) and isinstance(volume, int | float) and volume >= 0:
                found.append((int(stamp), int(volume)))
        return found

    def _free_float(self, symbol: str) -> int | None:
        for row in self._client.list_stocks_floats(ticker=symbol, limit=1):
            value = getattr(row, "free_float", None)
            return int(value) if isinstance(value, int | float) and value > 0 else None
        return None


def _agg_row(agg: object) -> dict[str, object]:
    """The SDK's ``Agg`` model back in wire keys."""
    return {
        "o": getattr(agg, "open", None),
        "h": getattr(agg, "high", None),
        "l": getattr(agg, "low", None),
        "c": getattr(agg, "close", None),
        "v": getattr(agg, "volume", None),
        "vw": getattr(agg, "vwap", None),
        "t": getattr(agg, "timestamp", None),
    }
