"""Python 3.12's ``asyncio.wait_for`` on Python 3.11, where the stock one loses cancellations.

On 3.11, ``wait_for`` runs its awaitable as a task of its own. When that task
finishes in the same loop pass as the caller is cancelled, ``wait_for``
returns the result and the cancellation is gone (CPython gh-86296, fixed in
3.12 by building ``wait_for`` on ``asyncio.timeout``). redis-py sends every
command through ``wait_for`` (``socket_timeout``), so a loop cancelled while
it sent one went on forever: presence renewal outlived its ``close()``, which
then never returned (CI: a teardown hung past the 60 s test timeout).

``install()`` puts this one in place of ``asyncio.wait_for`` for every caller
(redis-py, aiohttp, engineio and ours look it up on the module at call
time). It is 3.12's implementation; on 3.12 and later ``install()`` does
nothing. ``tests/unit/test_wait_for_backport.py`` shows the stock 3.11 one
losing a cancellation and this one never doing so.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")

#: The function ``install()`` replaced (the stock one), for the tests.
STOCK_WAIT_FOR = asyncio.wait_for


async def wait_for(fut: Awaitable[T], timeout: float | None) -> T:
    """Wait for ``fut`` at most ``timeout`` seconds; a cancellation is never lost.

    As 3.12: the awaitable runs in the caller's task (no task of its own), so
    a cancellation reaches it, and a timeout raises ``TimeoutError``. A
    timeout of 0 or less still lets an awaitable that is done already give
    its result.
    """
    if timeout is not None and timeout <= 0:
        task = asyncio.ensure_future(fut)
        if task.done():
            return task.result()
        await _cancel_and_wait(task)
        try:
            return task.result()
        except asyncio.CancelledError as exc:
            raise TimeoutError from exc
    async with asyncio.timeout(timeout):
        return await fut


async def _cancel_and_wait(task: asyncio.Future[T]) -> None:
    """Cancel ``task`` and wait until it is done, without cancelling ourselves."""
    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def release(_: asyncio.Future[T]) -> None:
        if not waiter.done():
            waiter.set_result(None)

    task.add_done_callback(release)
    try:
        task.cancel()
        await waiter
    finally:
        task.remove_done_callback(release)


def install() -> None:
    """Use this ``wait_for`` everywhere, on Pythons whose own can lose a cancellation."""
    if sys.version_info >= (3, 12):
        return
    # typeshed still admits generator-based coroutines, which 3.11 removed.
    asyncio.wait_for = wait_for  # type: ignore[assignment]
    asyncio.tasks.wait_for = wait_for  # type: ignore[assignment]
