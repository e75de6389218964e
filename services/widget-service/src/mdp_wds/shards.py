"""Widget pub/sub on a Redis Cluster: exact names by ``SSUBSCRIBE`` on their shard's master.

On a cluster the writers publish every write twice (``mdp_cache.widgets.publish_flags``):
``SPUBLISH``, which only the shard owning the name's hash slot carries, and ``PUBLISH``, which
the cluster bus copies to every node, for pattern subscribers (sharded pub/sub has no
patterns). :class:`ClusterPubSub` follows that split with the same interface as one
:class:`~mdp_wds.link.PubSubLink`:

* **exact names** go to one sharded link per master (``SSUBSCRIBE``/``smessage``), chosen by
  the name's CRC16 hash slot (:func:`mdp_cache.client.slot_of`) in the slot map read with
  ``CLUSTER SLOTS``, so exact-name fan-out grows with the shards;
* **patterns** are on one plain link (``PSUBSCRIBE``/``pmessage``), first to the node the URL
  names, and to a random master of the map once that node is no longer one (it died and its
  replica was promoted): every node receives every ``PUBLISH``.

No message is delivered twice: an exact name is never subscribed with ``SUBSCRIBE``, so a
write arrives once as an ``smessage`` (routed by the hub to that name's subscribers) and once
per matching pattern as a ``pmessage`` (routed to that pattern's subscribers), exactly as a
``message`` and a ``pmessage`` do on one Redis. An exact name covered by a held pattern is
still sharded-subscribed: the hub never hands a ``pmessage`` to exact subscribers, so leaving
it out would starve them. While a name moves between shards only the link of its current
master may deliver it (the late messages of the others are dropped), so a move never
doubles a message either.

The slot map is read again when a sharded link goes down (its master died: the replica is
promoted after ``cluster-node-timeout``), when Redis redirects an ``SSUBSCRIBE`` (``MOVED``) or
ends a subscription itself (an ``sunsubscribe`` push: the slot migrated), and every
:data:`MAP_REFRESH_SECONDS`. Until the map names a live master again it is re-read with the
link's backoff (:mod:`mdp_core.backoff`). Names that moved are subscribed on their new master,
then ``on_resync`` re-sends every client's snapshots (messages may have been missed meanwhile).
A gap is closed once, when every name and the pattern link are active again: a link that
reconnects before the others does not re-send on its own, so a failover that moves both the
pattern link and a master's names costs one re-send, not one per link.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from mdp_cache.client import PUBSUB_RECONNECT, slot_of
from mdp_core.backoff import Backoff, BackoffPolicy
from mdp_core.logging import get_logger
from mdp_wds.link import (
    Endpoint,
    Kind,
    LinkError,
    MessageCallback,
    PubSubLink,
    request,
    until_done,
)
from mdp_wds.resp import RespValue

__all__ = ["MAP_REFRESH_SECONDS", "Address", "ClusterPubSub", "SlotMap", "parse_cluster_slots"]

_log = get_logger(__name__)

Address = tuple[str, int]
"""``(host, port)`` of a cluster node."""

MAP_REFRESH_SECONDS: Final = 30.0
"""The slot map is re-read at least this often (a failover that left the old master alive)."""
_CONFIRM_TIMEOUT_SECONDS: Final = 10.0
"""How long a map change waits for the moved names' confirmations before going on."""


@dataclass(frozen=True, slots=True)
class SlotMap:
    """Which master serves which hash slots, and every node known (to read the map again)."""

    starts: tuple[int, ...]
    ends: tuple[int, ...]
    masters: tuple[Address, ...]
    nodes: tuple[Address, ...]

    def master_of(self, slot: int) -> Address | None:
        """The master serving ``slot``; ``None`` when no range covers it."""
        index = bisect_right(self.starts, slot) - 1
        if index >= 0 and slot <= self.ends[index]:
            return self.masters[index]
        return None

    def route(self, name: str | bytes) -> Address | None:
        """The master whose shard carries the shard channel ``name``."""
        return self.master_of(slot_of(name))


def _node(entry: RespValue, asked: str) -> Address:
    if (
        not isinstance(entry, list)
        or len(entry) < 2
        or not isinstance(entry[0], bytes)
        or not isinstance(entry[1], int)
    ):
        msg = f"a CLUSTER SLOTS node is not [host, port, ...]: {entry!r:.80}"
        raise ValueError(msg)
    host = entry[0].decode()
    # An empty or "?" endpoint means "the node you asked" (cluster-preferred-endpoint-type).
    return (asked if host in {"", "?"} else host), entry[1]


def parse_cluster_slots(reply: RespValue, asked: str) -> SlotMap:
    """The slot map in a ``CLUSTER SLOTS`` reply read from the node at host ``asked``.

    Raises:
        ValueError: when the reply is not a ``CLUSTER SLOTS`` reply.
    """
    if not isinstance(reply, list):
        msg = f"CLUSTER SLOTS answered {reply!r:.80}"
        raise ValueError(msg)
    ranges: list[tuple[int, int, Address]] = []
    nodes: dict[Address, None] = {}
    for item in reply:
        if (
            not isinstance(item, list)
            or len(item) < 3
            or not isinstance(item[0], int)
            or not isinstance(item[1], int)
        ):
            msg = f"a CLUSTER SLOTS range is not [start, end, master, ...]: {item!r:.80}"
            raise ValueError(msg)
        master = _node(item[2], asked)
        ranges.append((item[0], item[1], master))
        for entry in item[2:]:
            nodes[_node(entry, asked)] = None
    ranges.sort()
    return SlotMap(
        starts=tuple(r[0] for r in ranges),
        ends=tuple(r[1] for r in ranges),
        masters=tuple(r[2] for r in ranges),
        nodes=tuple(nodes),
    )


class ClusterPubSub:
    """Sharded exact names and one pattern link: :class:`~mdp_wds.link.PubSubLink`'s interface.

    Args:
        url: A cluster URL (``redis+cluster://``/``rediss+cluster://``) naming any one node: the
            seed of the slot map and the node of the pattern link.
        on_message: As for :class:`~mdp_wds.link.PubSubLink` (``pattern`` is ``None`` for an
            exact name's ``smessage``).
        on_resync: Called when messages may have been missed and every subscription is active
            again: a link reconnected, or names moved to another master (once for links that
            come back together).
        on_state: Called with ``True``/``False`` when every link is up, or one goes down.
        backoff: Reconnect delays of every link and of re-reading the slot map.
        rng: Random source of the jitter.
        ping_interval: Keepalive of every link.
    """

    def __init__(
        self,
        url: str,
        on_message: MessageCallback,
        *,
        on_resync: Callable[[], None] = lambda: None,
        on_state: Callable[[bool], None] = lambda _up: None,
        backoff: BackoffPolicy = PUBSUB_RECONNECT,
        rng: random.Random | None = None,
        ping_interval: float = 15.0,
    ) -> None:
        self._seed = Endpoint.from_url(url)
        self._on_message = on_message
        self._on_resync = on_resync
        self._on_state = on_state
        self._backoff_policy = backoff
        self._rng = rng or random.Random()
        self._backoff = Backoff(backoff, self._rng)
        self._ping_interval = ping_interval
        self._patterns = PubSubLink(
            self._seed,
            on_message,
            on_state=self._link_state,
            backoff=backoff,
            rng=self._rng,
            ping_interval=ping_interval,
        )
        self._links: dict[Address, PubSubLink] = {}
        #: Every exact name wanted, and the master it is subscribed on (None: no map yet).
        self._owner: dict[bytes, Address | None] = {}
        self._map: SlotMap | None = None
        self._refresh = asyncio.Event()
        self._connected = asyncio.Event()
        self._gap = False
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    @property
    def connected(self) -> bool:
        """Whether the slot map is known and every link is up and subscribed."""
        return self._connected.is_set()

    @property
    def subscription_count(self) -> int:
        """Exact names plus patterns currently wanted."""
        return len(self._owner) + self._patterns.subscription_count

    @property
    def shards(self) -> dict[Address, PubSubLink]:
        """The sharded link of each master (for tests)."""
        return dict(self._links)

    def owner(self, name: str) -> Address | None:
        """The master an exact name is subscribed on, if any."""
        return self._owner.get(name.encode())

    async def wait_connected(self, within: float | None = None) -> bool:
        """Wait until every link is up; ``False`` when ``within`` seconds pass first."""
        try:
            async with asyncio.timeout(within):
                await self._connected.wait()
        except TimeoutError:
            return False
        return True

    def start(self) -> None:
        """Start the pattern link and the slot-map keeper (idempotent)."""
        if self._task is None:
            self._stopped = False
            self._patterns.start()
            self._refresh.set()
            loop = asyncio.get_running_loop()
            self._task = loop.create_task(self._keep_map(), name="wds-cluster-map")

    async def stop(self) -> None:
        """Close every link and stop following the cluster."""
        self._stopped = True  # no link is opened from here on (_link)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await until_done(task)
        await self._patterns.stop()
        while self._links:  # a stop awaits: take the links one by one, none is left open
            await self._links.popitem()[1].stop()

    async def subscribe(self, name: str, kind: Kind) -> bool:
        """Subscribe and wait for the confirmation (:meth:`PubSubLink.subscribe`).

        Returns:
            ``True`` once active; ``False`` when not yet (the link is down, the slot map is not
            read yet, or the name's slot moved): it is made later, followed by ``on_resync``.
        """
        if kind == "pattern":
            return await self._patterns.subscribe(name, kind)
        if self._stopped:
            return False
        key = name.encode()
        address = self._owner.get(key)
        if address is None:
            address = self._map.route(key) if self._map is not None else None
            self._owner[key] = address
        if address is None:
            self._gap = True
            return False
        active = await self._link(address).subscribe(name, "channel")
        if not active:
            self._gap = True
        return active

    def unsubscribe(self, name: str, kind: Kind) -> None:
        """Drop a name or pattern (late messages are ignored)."""
        if kind == "pattern":
            self._patterns.unsubscribe(name, kind)
            return
        address = self._owner.pop(name.encode(), None)
        link = self._links.get(address) if address is not None else None
        if link is not None:
            link.unsubscribe(name, "channel")

    # --- links ----------------------------------------------------------------------------

    def _link(self, address: Address) -> PubSubLink:
        link = self._links.get(address)
        if link is None:
            if self._stopped:
                msg = "the cluster pub/sub is stopped"
                raise LinkError(msg)
            link = PubSubLink(
                self._seed.at(*address),
                self._shard_messages(address),
                on_state=functools.partial(self._shard_state, address),
                backoff=self._backoff_policy,
                rng=self._rng,
                ping_interval=self._ping_interval,
                sharded=True,
                on_moved=self._moved,
            )
            self._links[address] = link
            link.start()
            self._update_state()
        return link

    def _shard_messages(self, address: Address) -> MessageCallback:
        owner, deliver = self._owner, self._on_message

        def on_message(channel: bytes, pattern: bytes | None, payload: bytes) -> None:
            # Only the current master's link delivers a name (none twice while it moves).
            if owner.get(channel) == address:
                deliver(channel, pattern, payload)

        return on_message

    def _moved(self, slot: int) -> None:
        del slot  # the map is read again whole: one slot seldom moves alone
        self._refresh.set()

    def _shard_state(self, address: Address, up: bool) -> None:
        if self._links.get(address) is not None:  # else stopped: its names moved (_apply)
            self._link_state(up)

    def _link_state(self, up: bool) -> None:
        # The links' own on_resync is not used: a link that goes down opens a gap here, and
        # the gap is closed (one re-send) once every link is active again. A failover brings
        # the pattern link and the moved names back at different moments; a re-send for each
        # read every snapshot twice, the first while the moved names still missed messages.
        if not up:
            self._gap = True
            self._refresh.set()  # a master may be gone: see whom the cluster promoted
        self._update_state()

    def _update_state(self) -> None:
        up = (
            self._map is not None
            and self._patterns.connected
            and all(link.connected for link in self._links.values())
        )
        if up != self._connected.is_set():
            if up:
                self._connected.set()
            else:
                self._connected.clear()
            self._on_state(up)
        self._check_gap()

    def _all_active(self) -> bool:
        for key, address in self._owner.items():
            link = self._links.get(address) if address is not None else None
            if link is None or not link.is_active(key.decode(), "channel"):
                return False
        return self._patterns.connected

    def _check_gap(self) -> None:
        if self._gap and self._all_active():
            self._gap = False
            self._on_resync()

    # --- the slot map ---------------------------------------------------------------------

    async def _keep_map(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(MAP_REFRESH_SECONDS):
                    await self._refresh.wait()
            self._refresh.clear()
            try:
                slot_map = await self._read_map()
            except (OSError, EOFError, TimeoutError, LinkError, ValueError) as exc:
                _log.warning(
                    "redis_cluster_map_unreadable",
                    error=repr(exc),
                    failures=self._backoff.attempt + 1,
                )
                await asyncio.sleep(self._backoff.wait())
                self._refresh.set()
                continue
            await self._apply(slot_map)
            if self._healthy():
                self._backoff.reset()
            else:  # a master is still down: read the map again until its replica is promoted
                await asyncio.sleep(self._backoff.wait())
                self._refresh.set()

    def _healthy(self) -> bool:
        # Every name active, not only every link up: a map that lags a migration would
        # otherwise send SSUBSCRIBE to the old node, get MOVED and re-read it in a hot loop.
        return all(link.connected for link in self._links.values()) and self._all_active()

    def _candidates(self) -> Iterable[Endpoint]:
        yield self._seed
        if self._map is not None:
            for host, port in self._map.nodes:
                if (host, port) != (self._seed.host, self._seed.port):
                    yield self._seed.at(host, port)

    async def _read_map(self) -> SlotMap:
        """``CLUSTER SLOTS`` from the seed, else from any node of the last map.

        Raises:
            OSError, EOFError, TimeoutError, LinkError, ValueError: no node answered well.
        """
        error: Exception = LinkError("no cluster node to ask")
        for endpoint in self._candidates():
            try:
                reply = await request(endpoint, "CLUSTER", "SLOTS")
                return parse_cluster_slots(reply, endpoint.host)
            except (OSError, EOFError, TimeoutError, LinkError, ValueError) as exc:
                error = exc
        raise error

    async def _apply(self, slot_map: SlotMap) -> None:
        """Route every name by ``slot_map``; subscribe the moved ones on their new master."""
        first = self._map is None
        self._map = slot_map
        moved: list[tuple[str, PubSubLink]] = []
        for key, current in list(self._owner.items()):
            target = slot_map.route(key)
            name = key.decode()
            if target != current:
                old = self._links.get(current) if current is not None else None
                if old is not None:
                    old.unsubscribe(name, "channel")
                self._owner[key] = target
            if target is None:
                continue
            link = self._link(target)
            if target != current or (
                # redirected earlier by a node the map was stale about: subscribe again
                link.connected
                and not link.is_active(name, "channel")
                and not link.is_pending(name, "channel")
            ):
                moved.append((name, link))  # a link that is down subscribes on reconnect
        masters = set(slot_map.masters)
        patterns_at = self._patterns.endpoint
        if masters and (patterns_at.host, patterns_at.port) not in masters:
            # Its node died (or was demoted): patterns are served by any live master.
            self._patterns.move_to(self._seed.at(*self._rng.choice(sorted(masters))))
        for address in masters:
            self._link(address)  # up before a name needs it: no resync for the first name
        for address in [a for a in self._links if a not in masters]:
            await self._links.pop(address).stop()  # demoted or gone
        if moved:
            _log.info("redis_shard_channels_rerouted", names=len(moved), first_map=first)
            self._gap = True
            confirmations = asyncio.gather(
                *(link.subscribe(name, "channel") for name, link in moved)
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_CONFIRM_TIMEOUT_SECONDS):
                    await confirmations
        self._update_state()
