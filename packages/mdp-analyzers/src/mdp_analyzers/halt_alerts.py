"""Trading halts and resumes (LULD) as alerts, with the limit band and the resume price.

Runs in the scanner on the LULD records the router publishes (``luld:{symbol}``: the Massive
``LULD`` event, ``T h l i t``, plus the ``halted`` flag merged over every processor replica, see
:mod:`mdp_analyzers.halts`) and on the quote records (``quote:{symbol}``).

* **Halt**: a record whose indicators carry 17 (trading pause), or whose ``halted`` flag turns
  on, raises a halt alert at the record's time with the band in force (``high_limit``,
  ``low_limit``) and the last price seen before it.
* **Resume**: indicator 18, or the flag turning off after a halt. The LULD event carries no
  price, so the resume alert waits for the first quote record whose bar starts at or after the
  resume: its ``open`` is the resume price (the reopening print). When none comes within
  ``resume_wait_seconds`` of the injected clock the alert is raised without a price.
* Identity ``symbol|halt|t`` / ``symbol|resume|t``: one alert per event whichever replica or
  restarted scanner raises it. List feed ``alerts:halts``, newest first by ``as_of_ms``.
* After a restart the symbols' halt state is rebuilt from the ``luld:*`` snapshots without
  alerting, so a resume signalled only by the merged flag is still recognised.
* A pause ends with its trading day (none outlasts the close, and no resume is sent for one
  the close ended): a halt of an earlier day is forgotten, never resumed, and a halt the next
  day is alerted as any other.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Final

import msgspec

from mdp_analyzers.alerts import AlertQueue, DayClock, EventMs, decode_quote_seen, money
from mdp_analyzers.halts import LULD_HALT, LULD_RESUME
from mdp_analyzers.typing import FeedMessage, Output
from mdp_cache.keys import FEED_ALERTS_HALTS, FEED_LATEST_LULD, FEED_QUOTE
from mdp_core.calendar import MarketCalendar
from mdp_core.clock import NS_PER_SECOND
from mdp_core.errors import InvalidJson, MalformedInput
from mdp_core.events import Symbol

__all__ = ["HaltAlert", "HaltAlertsAnalyzer"]

_NS_PER_MS: Final = 1_000_000


class HaltAlert(msgspec.Struct, kw_only=True):
    """One element of ``alerts:halts``.

    ``price``: for a halt, the last price seen before it; for a resume, the reopening price
    (None: no print seen in time). ``halted_ms``: for a resume, how long the pause lasted
    (None when the halt was not seen).
    """

    symbol: str
    trading_day: str
    kind: str
    high_limit: float
    low_limit: float
    price: float | None
    halted_ms: int | None
    note: str
    as_of_ms: int


class _Luld(msgspec.Struct, frozen=True):
    """The fields of a LULD record this analyzer reads."""

    T: Symbol
    h: float
    l: float  # noqa: E741 - the vendor's wire name
    t: EventMs
    i: tuple[int, ...] = ()
    halted: bool | None = None


_LULD_DECODER: Final = msgspec.json.Decoder(_Luld)


@dataclass(slots=True)
class _Pending:
    """A resume waiting for its reopening print."""

    at_ms: int
    high_limit: float
    low_limit: float
    halted_ms: int | None
    seen_ns: int


@dataclass(slots=True)
class _State:
    halted_at: int | None = None
    last_price: float | None = None
    last: tuple[int, bool | None, tuple[int, ...]] = (-1, None, ())


class HaltAlertsAnalyzer:
    """LULD halt and resume alerts (see the module docstring).

    Args:
        calendar: The market calendar (trading days of the alerts).
        resume_wait_seconds: Seconds (injected clock) a resume waits for its reopening print.
    """

    name: ClassVar[str] = "halt_alerts"
    consumes: ClassVar[frozenset[str]] = frozenset({FEED_LATEST_LULD.pattern, FEED_QUOTE.pattern})

    def __init__(
        self, calendar: MarketCalendar | None = None, *, resume_wait_seconds: float = 60.0
    ):
        self._calendar = calendar or MarketCalendar()
        self._clock = DayClock(self._calendar)
        self._wait_ns = int(resume_wait_seconds * NS_PER_SECOND)
        self._symbols: dict[str, _State] = {}
        self._pending: dict[str, _Pending] = {}
        self._alerts = AlertQueue(FEED_ALERTS_HALTS)
        #: Whether a record was handed over since start (a later restore is a reconnect's).
        self._live = False

    @property
    def rejected(self) -> Counter[str]:
        """Inputs skipped, by reason."""
        return self._alerts.rejected

    def apply(self, inputs: Sequence[object], now_ns: int) -> None:
        """Fold LULD and quote records, in arrival order."""
        self._clock.roll(now_ns)
        for message in inputs:
            if not isinstance(message, FeedMessage):
                continue
            self._live = True
            try:
                if FEED_LATEST_LULD.matches(message.name):
                    self._luld(message.payload, now_ns)
                elif FEED_QUOTE.matches(message.name):
                    self._quote(message.payload)
            except MalformedInput as exc:
                self._alerts.reject(exc)

    def collect(self, now_ns: int) -> Output:
        """Alerts since the last call; resumes that waited too long go out without a price."""
        self._clock.roll(now_ns)
        for symbol, pending in list(self._pending.items()):
            if now_ns - pending.seen_ns >= self._wait_ns:
                del self._pending[symbol]
                self._resume(symbol, pending, None)
        return Output(widgets=self._alerts.take())

    # --- Rehydratable ---------------------------------------------------------------------

    def snapshot_patterns(self) -> Sequence[str]:
        """The latest LULD record of every symbol (``luld:*``)."""
        return (FEED_LATEST_LULD.pattern,)

    def restore(self, snapshots: Mapping[str, bytes], now_ns: int) -> None:
        """At start, learn which symbols are halted now (when each halt began), silently.

        The scanner's catch-up then hands over the same records: a halt known here raises
        nothing again. After a lost link (this process has seen records before) nothing is
        learnt here, so what changed meanwhile, a halt or a resume, is alerted by the catch-up
        as it would have been live; the alert's identity keeps one already appended from
        being appended twice.
        """
        self._clock.roll(now_ns)
        if self._live:
            return  # a reconnect: the catch-up brings what changed meanwhile, and alerts it
        for name, payload in snapshots.items():
            if not FEED_LATEST_LULD.matches(name):
                continue
            try:
                record = _LULD_DECODER.decode(payload)
            except msgspec.DecodeError:
                self.rejected["invalid_snapshot"] += 1
                continue
            if self._clock.is_stale(self._day_of(record.t)):
                continue  # a pause ends with its trading day
            state = self._symbols.setdefault(record.T, _State())
            if record.halted is True or LULD_HALT in record.i:
                state.halted_at = record.t

    # --- internals ------------------------------------------------------------------------

    def _luld(self, payload: bytes, now_ns: int) -> None:
        try:
            record = _LULD_DECODER.decode(payload)
        except msgspec.DecodeError as exc:
            raise InvalidJson(f"not a LULD record: {exc}") from None
        if self._clock.is_stale(self._day_of(record.t)):
            self.rejected["stale_day"] += 1  # yesterday's record, e.g. in a catch-up
            return
        state = self._symbols.setdefault(record.T, _State())
        key = (record.t, record.halted, record.i)
        if record.t < state.last[0] or key == state.last:
            return  # an older record, or the same one again, says nothing new
        state.last = key
        if state.halted_at is not None and self._day_of(state.halted_at) < self._day_of(record.t):
            state.halted_at = None  # a pause ends with its trading day: no resume to alert
        halt = LULD_HALT in record.i or (record.halted is True and LULD_RESUME not in record.i)
        resume = LULD_RESUME in record.i or (record.halted is False and state.halted_at is not None)
        if halt and state.halted_at is None:
            state.halted_at = record.t
            pending = self._pending.pop(record.T, None)
            if pending is not None:
                # Halted again before a reopening print: the resume happened all the same.
                self._resume(record.T, pending, None)
            band = f"{money(record.l)}-{money(record.h)}"
            alert = HaltAlert(
                symbol=record.T,
                trading_day=self._day_of(record.t),
                kind="halt",
                high_limit=record.h,
                low_limit=record.l,
                price=state.last_price,
                halted_ms=None,
                note=f"LULD pause; band {band}",
                as_of_ms=record.t,
            )
            self._alerts.raise_alert(
                alert, as_of_ms=record.t, identity=f"{record.T}|halt|{record.t}"
            )
        elif resume and (state.halted_at is not None or LULD_RESUME in record.i):
            halted_ms = record.t - state.halted_at if state.halted_at is not None else None
            state.halted_at = None
            self._pending[record.T] = _Pending(record.t, record.h, record.l, halted_ms, now_ns)

    def _quote(self, payload: bytes) -> None:
        seen = decode_quote_seen(payload)
        state = self._symbols.setdefault(seen.symbol, _State())
        pending = self._pending.get(seen.symbol)
        if pending is not None and seen.start_ms >= pending.at_ms:
            del self._pending[seen.symbol]
            self._resume(seen.symbol, pending, seen.open)
        if state.halted_at is None:
            state.last_price = seen.price

    def _resume(self, symbol: str, pending: _Pending, price: float | None) -> None:
        note = f"resumed at {money(price)}" if price is not None else "resumed"
        if pending.halted_ms is not None:
            note += f" after {pending.halted_ms // 1000} s"
        alert = HaltAlert(
            symbol=symbol,
            trading_day=self._day_of(pending.at_ms),
            kind="resume",
            high_limit=pending.high_limit,
            low_limit=pending.low_limit,
            price=price,
            halted_ms=pending.halted_ms,
            note=note,
            as_of_ms=pending.at_ms,
        )
        identity = f"{symbol}|resume|{pending.at_ms}"
        self._alerts.raise_alert(alert, as_of_ms=pending.at_ms, identity=identity)

    def _day_of(self, at_ms: int) -> str:
        return self._calendar.trading_day(at_ms * _NS_PER_MS).isoformat()
