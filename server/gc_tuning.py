"""The cyclic garbage collector, set for a server that allocates per message.

With CPython's defaults (700, 10, 10) a node under workload C collected the
young generation about 80 times a second and ran a full collection every
couple of seconds, each one walking every long-lived object (the imported
modules, the seeded directory, every connection): 60 ms with the GIL held,
during which no connection was served. That was the largest item of C's p99
(``python -m bench`` C: 136 ms with the defaults, 21 ms with these settings,
same machine, same run of the day; GC time 0.80 s against 0.08 s in 12 s).

Two changes, both documented in ``gc`` and used by large Python services:

* a larger young generation, so short-lived cycles (futures, tasks, frames of
  failed awaits) are collected in fewer, still short, passes; and
* ``gc.freeze()`` once the node is ready: what exists then (code, modules,
  settings, the seed) lives as long as the process, so full collections
  stop walking it.

Reference counting frees everything without a cycle at once, as before: this
only changes when cycles are found, never whether.

What a pass costs is the number of tracked objects it walks, so what a node
keeps by the hundred thousand (a projection's messages, server/domain/
incident.py) is built of objects the collector does not track. ``PauseTimer``
reports every pass's length (``liaison_gc_pause_seconds``), so an operator
sees it if something long-lived starts to be walked again.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

#: Collections of the middle and the old generation, relative to the young.
#: The old one also waits until a quarter of the long-lived objects are new
#: since its last pass (CPython's own rule), so it stays rare.
MIDDLE_EVERY = 20
OLD_EVERY = 100


def set_thresholds(young: int) -> None:
    """Collect the young generation every ``young`` net allocations; 0: CPython's defaults."""
    if young > 0:
        gc.set_threshold(young, MIDDLE_EVERY, OLD_EVERY)


def freeze_long_lived(young: int) -> int:
    """Move every object alive now out of the collector's passes; how many were moved.

    Called once, when the node is ready. A collection first, so garbage that
    startup left is freed, not kept for good. Nothing is frozen when ``young``
    is 0 (CPython's defaults asked for).
    """
    if young <= 0:
        return 0
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.debug("gc: %d objects frozen at startup, young generation every %d", frozen, young)
    return frozen


class PauseTimer:
    """Hands the length of each garbage collection of the process to ``observe``.

    A collection holds the GIL from its start to its stop, so every connection
    of the node waits it out: its length is latency all clients see. Install
    it while the node runs and remove it when it stops (``gc.callbacks`` is
    the process's, and a test process runs many nodes).
    """

    def __init__(self, observe: Callable[[int, float], None]) -> None:
        self._observe = observe
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        # Collections never nest or interleave: the collector holds the GIL
        # and refuses to start while one runs, so one start time is enough.
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self._observe(info["generation"], time.perf_counter() - self._started)

    def install(self) -> None:
        gc.callbacks.append(self)

    def remove(self) -> None:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self)
