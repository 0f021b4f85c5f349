"""The 3.12 ``wait_for`` on 3.11 (server/wait_for_backport.py): no cancellation is lost."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import server
from server import wait_for_backport
from server.wait_for_backport import STOCK_WAIT_FOR, wait_for

WaitFor = Callable[[Awaitable[Any], float | None], Awaitable[Any]]


async def _lost_cancellations(wait: WaitFor) -> list[tuple[int, int]]:
    """Cancel a caller of ``wait`` at each point of its wait; the (spins, steps) that went on.

    The awaited coroutine finishes after ``steps`` loop passes; the caller is
    cancelled after ``spins``. A caller still running when cancelled must end
    cancelled, whatever it awaited at that moment.
    """
    lost = []
    for steps in range(4):
        for spins in range(8):

            async def inner(n: int = steps) -> None:
                for _ in range(n):
                    await asyncio.sleep(0)

            async def caller() -> None:
                await wait(inner(), 5)
                await asyncio.sleep(0)

            task = asyncio.create_task(caller())
            for _ in range(spins):
                await asyncio.sleep(0)
            if not task.cancel():
                continue  # done before: nothing to lose
            try:
                await task
            except asyncio.CancelledError:
                continue
            lost.append((spins, steps))
    return lost


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12's own wait_for keeps them")
async def test_the_stock_wait_for_of_python_3_11_loses_cancellations() -> None:
    """Why the backport exists: if this ever passes no more, the patch can go."""
    assert await _lost_cancellations(STOCK_WAIT_FOR) != []


async def test_the_backport_loses_no_cancellation() -> None:
    assert await _lost_cancellations(wait_for) == []


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="installs nothing on 3.12")
def test_importing_the_server_installs_it_for_every_caller() -> None:
    assert server.wait_for_backport is wait_for_backport
    assert asyncio.wait_for is wait_for
    assert asyncio.tasks.wait_for is wait_for


async def test_it_gives_the_result_or_the_error_of_what_it_awaits() -> None:
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    async def broken() -> None:
        await asyncio.sleep(0)
        raise ValueError("inner")

    assert await wait_for(answer(), 5) == 42
    assert await wait_for(answer(), None) == 42
    with pytest.raises(ValueError, match="inner"):
        await wait_for(broken(), 5)


async def test_a_timeout_raises_timeout_error_and_cancels_what_it_awaited() -> None:
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    with pytest.raises(TimeoutError):
        await wait_for(never, 0.01)
    assert never.cancelled()


async def test_a_timeout_of_zero_gives_what_is_done_and_cancels_what_is_not() -> None:
    done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    done.set_result("ready")
    assert await wait_for(done, 0) == "ready"
    pending: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    with pytest.raises(TimeoutError):
        await wait_for(pending, 0)
    assert pending.cancelled()


async def test_cancelling_the_caller_cancels_what_it_awaited() -> None:
    awaited: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    caller = asyncio.create_task(wait_for(awaited, 5))
    await asyncio.sleep(0)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert awaited.cancelled()
