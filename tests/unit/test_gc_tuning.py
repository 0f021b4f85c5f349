"""server/gc_tuning.py: thresholds as asked, and a freeze that frees startup garbage first."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Iterator

import pytest

from server import gc_tuning


@pytest.fixture
def thresholds() -> Iterator[None]:
    kept = gc.get_threshold()
    yield
    gc.set_threshold(*kept)


def test_a_young_threshold_sets_all_three_generations(thresholds: None) -> None:
    gc_tuning.set_thresholds(12_345)
    assert gc.get_threshold() == (12_345, gc_tuning.MIDDLE_EVERY, gc_tuning.OLD_EVERY)


def test_zero_leaves_the_collector_as_it_is(thresholds: None) -> None:
    gc.set_threshold(700, 10, 10)
    gc_tuning.set_thresholds(0)
    assert gc.get_threshold() == (700, 10, 10)
    assert gc_tuning.freeze_long_lived(0) == 0


def test_freezing_collects_cycles_first_and_keeps_the_living() -> None:
    # In a process of its own: a freeze lasts as long as the process.
    script = """
import gc, weakref
from server import gc_tuning

class Node:
    pass

alive = Node()
garbage = Node()
garbage.self = garbage  # a cycle only the collector frees
gone = weakref.ref(garbage)
del garbage
gc.disable()  # nothing collects it before the freeze does
frozen = gc_tuning.freeze_long_lived(20_000)
assert gone() is None, "the cycle was frozen instead of freed"
assert frozen == gc.get_freeze_count() > 1_000, frozen
assert gc.is_tracked(alive) and alive is not None
print("ok", frozen)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok ")
