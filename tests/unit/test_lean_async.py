"""SocketQueue and Flag behave as asyncio.Queue() and asyncio.Event do, and hold nothing idle."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.transport.lean_async import Flag, SocketQueue

Op = tuple[str, int]
ops = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(0, 9)),
        st.tuples(st.sampled_from(["get", "done", "size"]), st.just(0)),
    ),
    max_size=60,
)


def apply(queue: Any, op: Op) -> object:
    name, value = op
    try:
        if name == "put":
            return queue.put_nowait(value)
        if name == "get":
            return queue.get_nowait()
        if name == "done":
            return queue.task_done()
        return (queue.qsize(), queue.empty(), queue.full())
    except (asyncio.QueueEmpty, ValueError) as exc:
        return type(exc)


@given(ops)
def test_every_sequence_of_calls_answers_as_asyncio_queue_does(sequence: list[Op]) -> None:
    async def run() -> None:
        ours, reference = SocketQueue(), asyncio.Queue[int]()
        for op in sequence:
            assert apply(ours, op) == apply(reference, op), op

    asyncio.run(run())


async def test_getters_are_served_in_the_order_they_came() -> None:
    queue = SocketQueue()
    got: list[tuple[str, int]] = []

    async def take(name: str) -> None:
        got.append((name, await queue.get()))

    tasks = [asyncio.create_task(take(n)) for n in "abc"]
    await asyncio.sleep(0)  # all three wait
    for item in (1, 2, 3):
        queue.put_nowait(item)
    await asyncio.gather(*tasks)
    assert got == [("a", 1), ("b", 2), ("c", 3)]


async def test_a_getter_cancelled_after_its_wake_up_passes_the_item_on() -> None:
    queue = SocketQueue()
    first = asyncio.create_task(queue.get())
    second = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait("only")  # wakes ``first``...
    first.cancel()  # ...which is cancelled before it runs
    assert await asyncio.wait_for(second, 5) == "only"
    assert first.cancelled()


async def test_a_cancelled_getter_leaves_no_waiter_behind() -> None:
    queue = SocketQueue()
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    getter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await getter
    queue.put_nowait(1)
    assert queue.get_nowait() == 1
    assert queue._getters is None


async def test_join_waits_for_every_item_to_be_done() -> None:
    queue = SocketQueue()
    await asyncio.wait_for(queue.join(), 1)  # nothing unfinished: at once
    queue.put_nowait(1)
    queue.put_nowait(2)
    joined = asyncio.create_task(queue.join())
    queue.get_nowait()
    queue.task_done()
    await asyncio.sleep(0)
    assert not joined.done()
    queue.get_nowait()
    queue.task_done()
    await asyncio.wait_for(joined, 1)
    queue.put_nowait(3)  # a new round of work: join waits again
    again = asyncio.create_task(queue.join())
    await asyncio.sleep(0)
    assert not again.done()
    queue.get_nowait()
    queue.task_done()
    await asyncio.wait_for(again, 1)


async def test_an_empty_queue_holds_no_buffers_and_is_smaller_than_asyncio_s() -> None:
    queue = SocketQueue()
    queue.put_nowait("ping")
    getter = asyncio.create_task(queue.get())
    assert await getter == "ping"
    queue.task_done()
    assert (queue._items, queue._getters, queue._finished) == (None, None, None)
    reference = asyncio.Queue[str]()
    theirs = sys.getsizeof(reference._queue) * 3  # type: ignore[attr-defined]
    assert sys.getsizeof(queue) < 100 < theirs


async def test_a_flag_wakes_every_waiter_once_and_stays_set() -> None:
    flag = Flag()
    assert not flag.is_set()
    waiters = [asyncio.create_task(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    flag.set()
    flag.set()  # a second set changes nothing
    await asyncio.wait_for(asyncio.gather(*waiters), 1)
    assert flag.is_set()
    await asyncio.wait_for(flag.wait(), 1)  # set already: at once
    assert flag._waiters is None


async def test_a_waiter_cancelled_before_the_flag_is_set_leaves_nothing() -> None:
    flag = Flag()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await flag.wait()
    assert flag._waiters == []
    assert not flag.is_set()
    assert sys.getsizeof(flag) < sys.getsizeof(asyncio.Event()._waiters)
