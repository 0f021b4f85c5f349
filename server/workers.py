"""``liaison serve --workers N``: one server process per core on one port.

Each worker is a full Liaison node on the shared Redis (DESIGN.md: one
process per core is the same deployment as many nodes), listening on the
same address through a sticky ``SO_REUSEPORT`` group (transport/reuseport.py).
The supervisor here only starts, watches and stops them; it serves nothing
and holds no state, so it cannot become the bottleneck.

* Worker 0 starts alone and seeds (``--demo``) before the others start, and
  each worker reports ready on a pipe once it listens.
* A worker that exits while the supervisor is not stopping is restarted with
  a capped back-off, under a new node id (its old presence expires by itself).
* SIGTERM or SIGINT to the supervisor is passed to every worker, which drains
  as a single server does; one that outlives the grace period is killed.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

from server.logs import event

log = logging.getLogger("server.workers")

#: Set by the supervisor in each worker's environment: the group's size
#: (the sticky program's modulus) and the pipe that reports it listening.
WORKER_GROUP_ENV, READY_FD_ENV = "LIAISON_WORKER_GROUP", "LIAISON_WORKER_READY_FD"
#: Seconds a worker may take from its start to listening.
READY_TIMEOUT_S = 60.0
#: Restart back-off after an unexpected exit: doubles up to the cap, and is
#: reset once a worker has run for ``STABLE_S``.
BACKOFF_S, BACKOFF_CAP_S, STABLE_S = 1.0, 30.0, 60.0


def worker_count(asked: int) -> int:
    """``asked`` workers; 0 means one per core this process may run on."""
    if asked > 0:
        return asked
    return max(1, len(os.sched_getaffinity(0)))


@dataclass
class Worker:
    index: int
    generation: int = 0
    proc: subprocess.Popen[bytes] | None = None
    pidfd: int = -1
    started: float = 0.0
    backoff_s: float = BACKOFF_S
    restart_at: float | None = None


@dataclass
class Supervisor:
    """Runs ``count`` copies of ``argv`` (a ``liaison serve`` command line)."""

    argv: list[str]
    count: int
    node_base: str
    workers: list[Worker] = field(default_factory=list)
    stopping: bool = False

    def run(self) -> int:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        failed = False
        try:
            self.workers = [Worker(i) for i in range(self.count)]
            for worker in self.workers:  # one at a time: worker 0 seeds first
                if self.stopping:
                    break
                if not self._start(worker):
                    failed = not self.stopping
                    self.stopping = True
            if not self.stopping:
                event(log, logging.INFO, "workers.ready", "%d workers ready", self.count)
            while not self.stopping:
                self._watch(wake_r)
        finally:
            self._stop_all()
            signal.set_wakeup_fd(-1)
            os.close(wake_r)
            os.close(wake_w)
        return 1 if failed else 0

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.stopping = True

    def _node_id(self, worker: Worker) -> str:
        suffix = f".{worker.generation}" if worker.generation else ""
        return f"{self.node_base}-w{worker.index}{suffix}"

    def _start(self, worker: Worker) -> bool:
        """Start ``worker`` and wait until it listens; False if it did not."""
        ready_r, ready_w = os.pipe()
        env = {
            **os.environ,
            "LIAISON_NODE_ID": self._node_id(worker),
            WORKER_GROUP_ENV: str(self.count),
            READY_FD_ENV: str(ready_w),
        }
        try:
            worker.proc = subprocess.Popen(  # noqa: S603 - our own command line
                self.argv, env=env, pass_fds=(ready_w,), stdin=subprocess.DEVNULL
            )
        finally:
            os.close(ready_w)
        worker.pidfd = os.pidfd_open(worker.proc.pid)
        worker.started = time.monotonic()
        try:
            ready = self._wait_ready(worker, ready_r)
        finally:
            os.close(ready_r)
        if ready:
            event(
                log,
                logging.INFO,
                "workers.started",
                "worker %d ready (pid %d, node %s)",
                worker.index,
                worker.proc.pid,
                self._node_id(worker),
                worker=worker.index,
                pid=worker.proc.pid,
            )
        elif not self.stopping:
            log.error("worker %d did not start (exit code %s)", worker.index, worker.proc.poll())
        if not ready and worker.proc.poll() is None:
            worker.proc.kill()  # it hangs before listening: _exited() reaps it
        return ready

    def _wait_ready(self, worker: Worker, ready_r: int) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self.stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            readable, _, _ = select.select([ready_r, worker.pidfd], [], [], min(left, 1.0))
            if ready_r in readable:
                return os.read(ready_r, 16).startswith(b"ready")
            if worker.pidfd in readable:
                return False  # it exited before listening
        return False

    def _watch(self, wake_r: int) -> None:
        """Wait for a worker's exit, a signal or a due restart."""
        now = time.monotonic()
        due = [w.restart_at for w in self.workers if w.restart_at is not None]
        timeout = max(0.0, min(due) - now) if due else None
        live = {w.pidfd: w for w in self.workers if w.pidfd >= 0}
        readable, _, _ = select.select([wake_r, *live], [], [], timeout)
        if wake_r in readable:
            os.read(wake_r, 64)
        for fd in readable:
            if fd in live:
                self._exited(live[fd])
        now = time.monotonic()
        for worker in self.workers:
            if not self.stopping and worker.restart_at is not None and worker.restart_at <= now:
                worker.restart_at = None
                worker.generation += 1
                if not self._start(worker):
                    self._exited(worker)

    def _exited(self, worker: Worker) -> None:
        assert worker.proc is not None
        code = worker.proc.wait()
        os.close(worker.pidfd)
        worker.pidfd = -1
        if self.stopping:
            return
        ran = time.monotonic() - worker.started
        if ran >= STABLE_S:
            worker.backoff_s = BACKOFF_S
        log.error(
            "worker %d (pid %d) exited with code %d after %.0f s; restarting in %.0f s",
            worker.index,
            worker.proc.pid,
            code,
            ran,
            worker.backoff_s,
        )
        worker.restart_at = time.monotonic() + worker.backoff_s
        worker.backoff_s = min(BACKOFF_CAP_S, worker.backoff_s * 2)

    def _stop_all(self, grace_s: float = 30.0) -> None:
        live = [w for w in self.workers if w.proc is not None and w.proc.poll() is None]
        for worker in live:
            assert worker.proc is not None
            worker.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for worker in live:
            assert worker.proc is not None
            try:
                worker.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker %d did not stop in %.0f s: killed", worker.index, grace_s)
                worker.proc.kill()
                worker.proc.wait()
        for worker in self.workers:
            if worker.pidfd >= 0:
                os.close(worker.pidfd)
                worker.pidfd = -1


def group_size() -> int:
    """In a worker: the size of its group; 0 when this process is no worker."""
    return int(os.environ.get(WORKER_GROUP_ENV, "0") or 0)


def notify_ready(*_: object) -> None:
    """In a worker: tell the supervisor this process listens (once).

    Given to ``web.run_app`` as its ``print``, which it calls once every
    site listens; the supervisor's pipe is the only thing it writes to.
    """
    fd = os.environ.pop(READY_FD_ENV, "")
    if fd:
        os.write(int(fd), b"ready\n")
        os.close(int(fd))


def node_base(node_id: str) -> str:
    return node_id or socket.gethostname()


def worker_argv() -> list[str]:
    """This command line again, for the workers (they know they are by the env)."""
    return [sys.executable, "-m", "server.cli", *sys.argv[1:]]
