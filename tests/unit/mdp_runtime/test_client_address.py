"""Which address a per-address limit counts: the peer's, or what a trusted proxy forwards."""

from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdp_runtime import TrustedProxies, address_bucket

PROXIES = TrustedProxies(["10.0.0.0/8", "2001:db8::/32", "127.0.0.1"])


@pytest.mark.parametrize(
    ("peer", "headers", "client"),
    [
        # A peer that is not a proxy: the header is the client's word, ignored.
        ("198.51.100.7", ["203.0.113.9"], "198.51.100.7"),
        # A trusted proxy: the right-most address it did not write itself is the client.
        ("10.1.2.3", ["203.0.113.9"], "203.0.113.9"),
        ("10.1.2.3", ["192.0.2.66, 203.0.113.9"], "203.0.113.9"),  # 192.0.2.66: client-written
        ("10.1.2.3", ["203.0.113.9, 10.9.9.9"], "203.0.113.9"),  # two proxies in a row
        ("10.1.2.3", ["192.0.2.66", "203.0.113.9"], "203.0.113.9"),  # the header twice
        ("10.1.2.3", ["203.0.113.9:51234"], "203.0.113.9"),  # with a port
        ("10.1.2.3", ["[2001:db9::5]:443"], "2001:db9::5"),
        ("10.1.2.3", ["10.4.4.4"], "10.4.4.4"),  # all trusted: the left-most
        ("10.1.2.3", ["203.0.113.9, not-an-ip"], "10.1.2.3"),  # malformed: believe nothing left
        ("10.1.2.3", [], "10.1.2.3"),
        ("10.1.2.3", [" , "], "10.1.2.3"),
        ("127.0.0.1", ["203.0.113.9"], "203.0.113.9"),
        (None, ["203.0.113.9"], "?"),
    ],
)
def test_the_client_address(peer: str | None, headers: list[str], client: str) -> None:
    assert PROXIES.client(peer, headers) == client


def test_no_proxies_means_the_header_is_never_read() -> None:
    nobody = TrustedProxies()
    assert not nobody
    assert nobody.client("10.1.2.3", ["203.0.113.9"]) == "10.1.2.3"


def test_a_bad_network_is_named() -> None:
    with pytest.raises(ValueError, match=re.escape("'10.0.0.0/33'")):
        TrustedProxies(["10.0.0.0/8", "10.0.0.0/33"])


addresses = st.ip_addresses(v=4).map(str)


@given(peer=addresses, hops=st.lists(addresses, max_size=5))
def test_an_untrusted_hop_is_never_skipped(peer: str, hops: list[str]) -> None:
    """Whatever the chain, the answer is the peer or a hop, and every hop to its right (and
    the peer, if a hop was taken) is a trusted proxy: a client cannot hide behind one."""
    client = PROXIES.client(peer, [", ".join(hops)])
    chain = [*hops, peer]
    assert client in chain
    index = len(chain) - 1 - chain[::-1].index(client)
    assert all(PROXIES.trusts(hop) for hop in chain[index + 1 :])
    if not PROXIES.trusts(peer):
        assert client == peer
    ipaddress.ip_address(client)  # raises if the answer is not an address


def test_address_buckets_group_an_ipv6_slash_64() -> None:
    assert address_bucket("2001:db8:1:2::1") == address_bucket("2001:db8:1:2:ffff::9")
    assert address_bucket("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert address_bucket("2001:db8:1:3::1") != address_bucket("2001:db8:1:2::1")
    assert address_bucket("::ffff:192.0.2.1") == "192.0.2.1"
    assert address_bucket("192.0.2.1") == "192.0.2.1"
    assert address_bucket("?") == "?"
