"""Massive data listener (MDL): the Massive stocks feed into the market data queues.

:class:`MassiveListener` is the whole listener and runs in any event loop with any
:class:`mdp_queues.Publisher`; ``python -m mdp_listener`` (the ``mdp-listener`` script) is the
service shell around it.
"""

from mdp_listener.batcher import Batcher, FlushedBatch
from mdp_listener.control import mount_control
from mdp_listener.listener import (
    InvalidTopicError,
    ListenerState,
    MassiveListener,
    SessionOutcome,
    validate_topics,
)
from mdp_listener.settings import DEFAULT_TOPICS, KNOWN_CHANNELS, ListenerSettings

__all__ = [
    "DEFAULT_TOPICS",
    "KNOWN_CHANNELS",
    "Batcher",
    "FlushedBatch",
    "InvalidTopicError",
    "ListenerSettings",
    "ListenerState",
    "MassiveListener",
    "SessionOutcome",
    "mount_control",
    "validate_topics",
]
