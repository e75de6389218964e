"""The cyclic garbage collector's policy for a long-running service process.

CPython's full collection scans every tracked object the process holds. In a server whose
start-up built most of its heap (imports, settings, tables), that scan is paid again every few
seconds for objects that live as long as the process; and with the default young-generation
threshold (700 allocations) the objects of one burst still in flight (a fan-out's queued
frames, scheduled callbacks) are collected mid-burst, survive, and are promoted until a full
collection follows: a pause of about 100 ms every 7-20 s in the widget service with 1,000
clients (docs/performance.md). Entry points call :func:`settle_heap` once start-up is done;
libraries never touch the collector.
"""

from __future__ import annotations

import gc

__all__ = ["settle_heap"]


def settle_heap(young_threshold: int | None = None) -> None:
    """Freeze what start-up made and, when given, collect the young generation less often.

    Frozen objects are never scanned again; they are still freed by reference counting (only
    a reference cycle among them would stay, and start-up's are collected just before).

    Args:
        young_threshold: Allocations between young-generation collections (CPython's default
            is 700); ``None`` keeps the current thresholds.
    """
    gc.collect()
    gc.freeze()
    if young_threshold is not None:
        _, middle, old = gc.get_threshold()
        gc.set_threshold(young_threshold, middle, old)
