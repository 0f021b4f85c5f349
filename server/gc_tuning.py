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
"""

from __future__ import annotations

import gc
import logging

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
