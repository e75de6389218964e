"""Where a provider key may travel without TLS: to this machine (loopback) only.

The listeners send the vendors' API keys in their handshakes and the processor in its REST
headers. A ``ws://`` or ``http://`` URL to any other host would put the key on the network in
clear, so the services refuse such a setting at start, as the listener's feed switch refuses
one at run time.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

__all__ = ["cleartext_problem", "is_loopback"]

_PLAIN = frozenset({"ws", "http"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 in brackets or not) is this machine."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def cleartext_problem(url: str, setting: str) -> str | None:
    """Why ``url`` (of ``setting``) may not carry a key, or None when it may.

    Plain ``ws://`` and ``http://`` are for loopback hosts only; ``wss://`` and ``https://``
    go anywhere.
    """
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
    except ValueError:
        return f"{setting} is not a URL"
    scheme = parts.scheme.lower()
    if scheme in _PLAIN and not is_loopback(host):
        secure = "wss" if scheme == "ws" else "https"
        return (
            f"{setting} sends the API key in clear to {host or 'no host'}: use {secure}:// "
            "(only a loopback host may go without TLS)"
        )
    return None
