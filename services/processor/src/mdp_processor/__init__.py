"""Market data processor (MDP): queues through analyzers into MDC and WDC.

:class:`Processor` is the loop (usable in-process with the memory bus, as the embedded demo
does); ``mdp-processor`` (:mod:`mdp_processor.__main__`) is the service with worker processes,
health and metrics.
"""

from mdp_processor.processor import Processor, ProcessorConfig, WidgetSink
from mdp_processor.settings import ProcessorSettings
from mdp_processor.stats import LagSamples, ProcessorStats

__all__ = [
    "LagSamples",
    "Processor",
    "ProcessorConfig",
    "ProcessorSettings",
    "ProcessorStats",
    "WidgetSink",
]
