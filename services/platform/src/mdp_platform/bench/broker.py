"""RabbitMQ's own count of messages that expired unread: the MDQ losses no component sees.

A message that waits in an MDQ queue past its 5 s TTL is dropped by the broker before any
processor takes it, so neither the listener (it published) nor the processors (they never
received it) can count it. RabbitMQ does (3.10+): its global counter
``messages_dead_lettered_expired_total`` for classic queues without a dead-letter exchange,
which the ``rabbitmq_prometheus`` plugin exports as
``rabbitmq_global_messages_dead_lettered_expired_total{dead_letter_strategy="disabled"}``
(the ``MdpBrokerExpiringEvents`` alert watches it in deployment). The bench reads it before
and after a run with ``rabbitmqctl eval`` when the broker is this machine's default node, so
an incomplete drain can say how many batches the broker dropped. The counter is broker-wide:
another client's expiring messages count too.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from typing import Final
from urllib.parse import urlsplit

__all__ = ["expired_messages"]

#: The counter, read from the map of counters of classic queues without dead-lettering.
_EXPRESSION: Final = (
    "maps:get(messages_dead_lettered_expired_total, maps:get("
    "[{queue_type, rabbit_classic_queue}, {dead_letter_strategy, disabled}], "
    "rabbit_global_counters:overview()))."
)
_LOCAL_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})


async def expired_messages(amqp_url: str, *, within: float = 20.0) -> int | None:
    """The broker's count of expired, dropped messages; None when it cannot be read here.

    Read only for a broker on this machine's default node (loopback, port 5672) with
    ``rabbitmqctl`` on the PATH; a failure or a slow answer is None, never an error: the
    figure explains a run, it must not break one.
    """
    parts = urlsplit(amqp_url)
    tool = shutil.which("rabbitmqctl")
    if parts.hostname not in _LOCAL_HOSTS or (parts.port or 5672) != 5672 or tool is None:
        return None
    try:
        process = await asyncio.create_subprocess_exec(
            tool,
            "eval",
            _EXPRESSION,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
    except OSError:
        return None
    try:
        out, _ = await asyncio.wait_for(process.communicate(), within)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        return None
    text = out.decode(errors="replace").strip()
    return int(text) if process.returncode == 0 and text.isdigit() else None
