"""The group-commit writer is supervised: no commit failure or death leaves a write hanging."""

from __future__ import annotations

import asyncio

import pytest

from server.domain.events import AppendResult, EventDraft
from server.errors import StorageUnavailable
from server.storage.group_commit import MAX_RESTARTS, GroupCommitQueue, Pending


def _draft(cid: str) -> EventDraft:
    return EventDraft(
        incident="i",
        type="message.posted",
        actor_user="u",
        actor_org="o",
        actor_name="U",
        client_id=cid,
        visibility=None,
        body={"text": cid},
    )


class Backend:
    """A commit function that fails on the drafts it is told to."""

    def __init__(self) -> None:
        self.committed: list[str] = []
        self.poison: set[str] = set()

    async def commit(self, batch: list[Pending]) -> None:
        for draft, _ in batch:
            if draft.client_id in self.poison:
                raise RuntimeError(f"bug on {draft.client_id}")
        self.committed += [d.client_id for d, _ in batch]
        for _, fut in batch:
            fut.cancel()  # stands for "answered"; these tests only look at failures


async def test_a_failing_commit_fails_its_batch_and_the_writer_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = Backend()
    backend.poison.add("bad")
    queue = GroupCommitQueue(backend.commit, 10, "test-writer")
    queue.start()
    try:
        with pytest.raises(StorageUnavailable):
            await asyncio.wait_for(queue.enqueue(_draft("bad")), 5)
        later = queue.enqueue(_draft("good"))
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(later, 5)
        assert backend.committed == ["good"]
        assert queue.stats() == {"healthy": True, "restarts": 0, "queued": 0, "waiting": 0}
    finally:
        await queue.close()
    assert "a commit of 1 appends failed" in caplog.text


async def test_a_writer_that_dies_is_restarted_then_given_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = Backend()
    queue = GroupCommitQueue(backend.commit, 10, "test-writer")
    queue.start()
    try:
        for restart in range(1, MAX_RESTARTS + 2):
            task = queue._task
            assert task is not None
            task.cancel()  # the writer ends although nobody closed the queue
            async with asyncio.timeout(5):
                while queue._task is task and not queue.dead:
                    await asyncio.sleep(0)
            assert queue.restarts == min(restart, MAX_RESTARTS)
        assert queue.dead
        assert not queue.stats()["healthy"]
        refused: asyncio.Future[AppendResult] = queue.enqueue(_draft("late"))
        with pytest.raises(StorageUnavailable):
            await asyncio.wait_for(refused, 1)  # refused at once, never hanging
    finally:
        await queue.close()
    assert "gave up after" in caplog.text


async def test_the_observer_hears_each_commit_once_with_its_oldest_wait() -> None:
    backend = Backend()
    heard: list[tuple[int, float]] = []
    queue = GroupCommitQueue(
        backend.commit, 10, "test-writer", observer=lambda n, s: heard.append((n, s))
    )
    queue.start()
    try:
        futures = [queue.enqueue(_draft(f"d{i}")) for i in range(3)]  # one batch
        await asyncio.gather(*futures, return_exceptions=True)
        async with asyncio.timeout(5):
            while not heard:
                await asyncio.sleep(0)
    finally:
        await queue.close()
    assert [n for n, _ in heard] == [3]
    assert 0 <= heard[0][1] < 5
