"""The market session the dashboard's header clock shows.

The server answers rather than the page because only the server knows the market's "now":
against the simulator it runs ahead of the wall clock (say 09:28 ET at five times real speed),
and the holidays and early closes live in :mod:`mdp_core.calendar`. The page extrapolates the
clock between two answers (``now_ms`` plus elapsed real time times ``speed``) and asks again
when ``next_change_ms`` has passed, so the session flips on time without polling every second.
"""

from __future__ import annotations

from typing import Final

from mdp_core.calendar import MarketCalendar, Session
from mdp_core.clock import ET, from_ns

__all__ = ["SESSION_LABELS", "market_session"]

_NS_PER_MS: Final = 1_000_000

#: What the header says for each session (the short names traders use).
SESSION_LABELS: Final[dict[Session, str]] = {
    Session.PRE_MARKET: "Pre-market",
    Session.REGULAR: "Market open",
    Session.AFTER_HOURS: "After hours",
    Session.CLOSED: "Closed",
}


def market_session(calendar: MarketCalendar, now_ns: int, speed: float) -> dict[str, object]:
    """The session in force at ``now_ns`` and when it next changes, as the API's JSON body.

    Args:
        calendar: The market calendar (holidays, early closes).
        now_ns: The market's now (simulated in the demo), Unix nanoseconds.
        speed: Market seconds per real second (1 in production).
    """
    session = calendar.session_at(now_ns)
    following, change = calendar.next_session_start(now_ns)
    day = from_ns(now_ns, ET).date()
    holiday = calendar.holiday_name(day)
    label = SESSION_LABELS[session]
    if session is Session.CLOSED and holiday is not None:
        label = f"Closed \u00b7 {holiday}"
    elif session is Session.CLOSED and day.weekday() >= 5:
        label = "Closed \u00b7 weekend"
    return {
        "now_ms": now_ns // _NS_PER_MS,
        "speed": speed,
        "session": str(session),
        "label": label,
        "holiday": holiday,
        "early_close": calendar.is_early_close(day),
        "next_session": str(following),
        "next_change_ms": int(change.timestamp() * 1000),
    }
