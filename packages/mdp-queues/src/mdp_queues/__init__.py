"""The market data queues (MDQ): one topology, AMQP (aio-pika) and in-process transports.

Listeners publish :class:`OutgoingBatch` es through a :class:`Publisher`; processors read
:class:`ReceivedBatch` es from a :class:`Consumer`. :class:`AmqpPublisher` /
:class:`AmqpConsumer` talk to RabbitMQ; :class:`MemoryBus` gives both sides in one process.
Queue names and arguments come only from :class:`Topology`.
"""

from importlib.metadata import version as _version

from mdp_queues._messages import (
    ConsumerStats,
    DropReason,
    OutboxStats,
    OutgoingBatch,
    Received,
    ReceivedBatch,
    ack_all,
)
from mdp_queues._protocols import Consumer, Handler, Publisher
from mdp_queues.amqp import (
    AmqpConsumer,
    AmqpPublisher,
    ConsumerLost,
    MismatchPolicy,
    TopologyMismatch,
    declare_topology,
)
from mdp_queues.memory import MemoryBus, MemoryConsumer, MemoryPublisher
from mdp_queues.nodes import broker_urls
from mdp_queues.outbox import Outbox
from mdp_queues.settings import QueueSettings
from mdp_queues.topology import (
    DEFAULT_MAX_LENGTH_BYTES,
    DEFAULT_NEWS_TTL_MS,
    DEFAULT_TTL_MS,
    MAX_PARTITIONS,
    NEWS_KIND,
    QueueSpec,
    Topology,
)

__version__ = _version("mdp-queues")

__all__ = [
    "DEFAULT_MAX_LENGTH_BYTES",
    "DEFAULT_NEWS_TTL_MS",
    "DEFAULT_TTL_MS",
    "MAX_PARTITIONS",
    "NEWS_KIND",
    "AmqpConsumer",
    "AmqpPublisher",
    "Consumer",
    "ConsumerLost",
    "ConsumerStats",
    "DropReason",
    "Handler",
    "MemoryBus",
    "MemoryConsumer",
    "MemoryPublisher",
    "MismatchPolicy",
    "Outbox",
    "OutboxStats",
    "OutgoingBatch",
    "Publisher",
    "QueueSettings",
    "QueueSpec",
    "Received",
    "ReceivedBatch",
    "Topology",
    "TopologyMismatch",
    "__version__",
    "ack_all",
    "broker_urls",
    "declare_topology",
]
