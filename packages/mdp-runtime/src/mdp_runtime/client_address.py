"""The address of the client behind a reverse proxy, trusted only from proxies we name.

Behind an Ingress every connection comes from the proxy, so per-address limits (websockets per
address, failed logins per address) would lump every user together. The proxy says who the
client is in ``X-Forwarded-For``, but anyone can send that header, so it is believed only when
the peer itself is a trusted proxy, and then only up to the first hop that is not one: the
right-most untrusted address is the client (hops to its left were written by the client).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

__all__ = ["TrustedProxies", "address_bucket"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(text: str) -> _Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "192.0.2.1:443"
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def address_bucket(address: str) -> str:
    """The unit a per-address limit counts: the address itself, or its /64 for IPv6.

    One IPv6 subscriber usually holds a whole /64 (and often more), so counting single IPv6
    addresses would let one client take as many slots as it likes. IPv4-mapped IPv6 addresses
    count as their IPv4 address; text that is not an address is its own bucket.
    """
    parsed = _address(address)
    if parsed is None:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


class TrustedProxies:
    """Networks whose connections may name the client in ``X-Forwarded-For``.

    Args:
        networks: CIDRs or single addresses (``10.0.0.0/8``, ``127.0.0.1``); none trusts no
            proxy, and the peer's address is always the client's.

    Raises:
        ValueError: an entry is not an IP network (the message names it).
    """

    def __init__(self, networks: Iterable[str] = ()) -> None:
        parsed: list[_Network] = []
        for text in networks:
            try:
                parsed.append(ipaddress.ip_network(text.strip(), strict=False))
            except ValueError:
                msg = f"not an IP network or address: {text!r}"
                raise ValueError(msg) from None
        self._networks: tuple[_Network, ...] = tuple(parsed)

    def __bool__(self) -> bool:
        return bool(self._networks)

    def trusts(self, address: str) -> bool:
        """Whether ``address`` belongs to a trusted proxy network."""
        parsed = _address(address)
        return parsed is not None and any(parsed in net for net in self._networks)

    def client(self, peer: str | None, forwarded_for: Sequence[str] = ()) -> str:
        """The client's address for a connection from ``peer`` carrying these headers.

        Args:
            peer: The socket's remote address (None when unknown).
            forwarded_for: Every ``X-Forwarded-For`` header value, in order.

        Returns:
            ``peer`` unless it is a trusted proxy; then the right-most forwarded address that is
            not a trusted proxy (or the left-most one if all are). A malformed hop ends the
            walk: nothing to its left is believed. ``"?"`` when the peer is unknown.
        """
        if peer is None:
            return "?"
        if not self._networks or not self.trusts(peer):
            return peer
        hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
        client = peer
        for hop in reversed(hops):
            parsed = _address(hop)
            if parsed is None:
                break
            client = str(parsed)
            if not any(parsed in net for net in self._networks):
                break
        return client
