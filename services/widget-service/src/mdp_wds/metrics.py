"""The WDS's metric families, read from :meth:`mdp_wds.stats.WdsStats.as_dict` at scrape time.

See :mod:`mdp_runtime.metrics`; the metrics reference in the docs is generated from this list.
"""

from __future__ import annotations

from mdp_runtime.metrics import Family

__all__ = ["FAMILIES"]

FAMILIES: tuple[Family, ...] = (
    Family("clients", "gauge", "Open client websockets.", "clients"),
    Family("subscriptions", "gauge", "Feed subscriptions held by clients.",
           "client_subscriptions"),
    Family("redis_subscriptions", "gauge",
           "Channels and patterns subscribed on the Redis link.", "redis_subscriptions"),
    Family("redis_connected", "gauge", "1 when the Redis pub/sub link is up.",
           "redis_connected"),
    Family("redis_messages", "counter", "Messages received from Redis pub/sub.", "messages_in"),
    Family("messages_out", "counter", "Feed messages written to client sockets.",
           "messages_out"),
    Family("snapshots", "counter", "Snapshot messages sent.", "snapshots_out"),
    Family("deltas", "counter", "Board updates sent as deltas (changed rows).", "deltas_out"),
    Family("redis_reconnects", "counter",
           "Gaps in the Redis pub/sub closed (links back): every client's snapshots re-sent.",
           "redis_reconnects"),
    Family("revocation_errors", "counter",
           "Failed reads of the revoked-session set (the token was then accepted).",
           "revocation_errors"),
    Family("snapshot_errors", "counter",
           "Snapshot reads the cache failed (the client is told the data follows with the next "
           "update).", "snapshot_errors"),
    Family("draining", "gauge",
           "1 while drained by the control plane (client sockets closed with 1001 and refused).",
           "draining"),
    Family("control_changes", "counter",
           "Runtime state changes ordered by the control plane, by new state (draining, running).",
           "control_changes", ("state",)),
    Family("bad_payloads", "counter",
           "Published or stored payloads that were not JSON and were skipped.", "bad_payloads"),
    Family("drops", "counter", "Messages dropped for a client, by reason.", "drops",
           ("reason",)),
    Family("disconnects", "counter",
           "Closed or refused connections, by reason (too_slow, bad_token, rate_limited...).",
           "disconnects", ("reason",)),
    Family("violations", "counter", "Security and protocol violations, by reason.",
           "violations", ("reason",)),
    Family("delivery_lag_seconds", "histogram",
           "Seconds from the payload's event time to the socket write.", "delivery_lag"),
    Family("fanout_seconds", "histogram",
           "Seconds to hand one published message to every subscribed client's queue.",
           "fanout"),
)  # fmt: skip
