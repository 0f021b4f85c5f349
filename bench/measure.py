"""Counters, event sinks, CPU accounting and percentiles for the load process.

Everything here runs in the load process's hot path or right next to it, so
the sinks do as little as possible per frame: the throughput sink only counts
envelopes, the latency sink decodes (it must read the send time out of the
text) but nothing else.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

#: Every envelope, in every server's JSON, has exactly one ``"seq":`` key; a
#: ``"seq":`` inside a string would be escaped (``\\"seq\\":``), so counting
#: the bytes counts envelopes without decoding them.
SEQ_KEY = b'"seq":'
NOTICE_PREFIX = b'42["notice"'
#: Message texts start with the sender's ``time.monotonic_ns()`` and this separator.
STAMP_SEP = "|"
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(slots=True)
class Stats:
    """Shared by every connection of one workload (one event loop, no locks)."""

    deliveries: int = 0
    ev_frames: int = 0
    posts: int = 0
    acks_ok: int = 0
    acks_err: int = 0
    first_error: str | None = None
    notices: int = 0
    lost_connections: int = 0
    window_posts: int = 0
    samples_ns: list[int] = field(default_factory=list)
    pacer_max_lag_s: float = 0.0
    #: Per connection and incident, checked by LatencySink views: an envelope
    #: whose seq is not above the last one (doubled or out of order), and a
    #: jump past the next seq (a lost event, in a log without holes).
    duplicates: int = 0
    reordered: int = 0
    gaps: int = 0

    def on_ack(self, frame: bytes) -> None:
        """Count one post ack; ok/err is read off the raw frame (JSON with or without spaces)."""
        if b'"ok":true' in frame or b'"ok": true' in frame:
            self.acks_ok += 1
        else:
            self.acks_err += 1
            if self.first_error is None:
                self.first_error = frame[:300].decode(errors="replace")

    @property
    def outstanding(self) -> int:
        return self.posts - self.acks_ok - self.acks_err


class _BaseSink:
    def __init__(self, stats: Stats) -> None:
        self.stats = stats

    def on_ev(self, buf: bytearray, start: int, end: int, arrived_ns: int) -> None:
        return None

    def on_other(self, packet: bytes) -> None:
        if packet.startswith(NOTICE_PREFIX):
            self.stats.notices += 1

    def on_lost(self) -> None:
        self.stats.lost_connections += 1


class QuietSink(_BaseSink):
    """For publishers: they follow nothing, only losses and notices matter."""


class CountSink(_BaseSink):
    """Throughput: count envelopes per ``ev`` frame, without decoding them."""

    def on_ev(self, buf: bytearray, start: int, end: int, arrived_ns: int) -> None:
        stats = self.stats
        stats.deliveries += buf.count(SEQ_KEY, start, end)
        stats.ev_frames += 1


class LatencySink(_BaseSink):
    """Latency: decode each frame and record arrival minus the stamped send time.

    Only posts sent inside ``[window_start_ns, window_end_ns)`` are sampled, so
    warm-up and drain do not dilute the percentiles.
    """

    def __init__(self, stats: Stats) -> None:
        super().__init__(stats)
        self.window_start_ns = 0
        self.window_end_ns = 0

    def on_ev(self, buf: bytearray, start: int, end: int, arrived_ns: int) -> None:
        self.envelopes(buf, start, end, arrived_ns, None)

    def envelopes(
        self, buf: bytearray, start: int, end: int, arrived_ns: int, last: dict[str, int] | None
    ) -> None:
        """Sample each envelope; with ``last`` (one connection's), check its order too."""
        stats = self.stats
        stats.ev_frames += 1
        for env in orjson.loads(memoryview(buf)[start + 2 : end])[1]:
            stats.deliveries += 1
            sent = _stamp(env)
            if sent is not None and self.window_start_ns <= sent < self.window_end_ns:
                stats.samples_ns.append(arrived_ns - sent)
            if last is not None:
                _check_order(stats, last, env)

    def for_connection(self) -> ConnectionSink:
        return ConnectionSink(self)


class ConnectionSink(_BaseSink):
    """One connection's view of a LatencySink: its own last seq per incident."""

    def __init__(self, shared: LatencySink) -> None:
        super().__init__(shared.stats)
        self.shared = shared
        self.last: dict[str, int] = {}

    def on_ev(self, buf: bytearray, start: int, end: int, arrived_ns: int) -> None:
        self.shared.envelopes(buf, start, end, arrived_ns, self.last)


def _check_order(stats: Stats, last: dict[str, int], env: Any) -> None:
    incident, seq = env.get("incident"), env.get("seq")
    if not isinstance(incident, str) or not isinstance(seq, int):
        return
    before = last.get(incident)
    if before is not None:
        if seq == before:
            stats.duplicates += 1
        elif seq < before:
            stats.reordered += 1
        elif seq > before + 1:
            stats.gaps += 1
    last[incident] = max(seq, before or seq)


def _stamp(env: Any) -> int | None:
    """The send time stamped at the start of a bench message's text, if any."""
    body = env.get("body") if isinstance(env, dict) else None
    text = body.get("text") if isinstance(body, dict) else None
    if not isinstance(text, str):
        return None
    head, sep, _ = text.partition(STAMP_SEP)
    return int(head) if sep and head.isdigit() else None


def stamped_text(sent_ns: int, filler: str) -> str:
    """A message text carrying its send time; ``filler`` pads it to a realistic size."""
    return f"{sent_ns}{STAMP_SEP}{filler}"


# ------------------------------------------------------------------- CPU


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy (all cores, incl. steal), from /proc/stat."""
    with open("/proc/stat", "rb") as f:
        values = [int(v) for v in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


@dataclass(frozen=True, slots=True)
class Snapshot:
    t: float
    deliveries: int
    ev_frames: int
    acks_ok: int
    client_cpu_s: float
    #: CPU seconds of each process of the server under test, by role.
    server_cpu_s: dict[str, float]
    busy_s: float

    @classmethod
    def take(cls, stats: Stats, server_pids: dict[str, int]) -> Snapshot:
        return cls(
            t=time.monotonic(),
            deliveries=stats.deliveries,
            ev_frames=stats.ev_frames,
            acks_ok=stats.acks_ok,
            client_cpu_s=process_cpu_s(os.getpid()),
            server_cpu_s={role: process_cpu_s(pid) for role, pid in server_pids.items()},
            busy_s=machine_busy_s(),
        )


def window_figures(a: Snapshot, b: Snapshot) -> dict[str, float]:
    """Rates and CPU shares between two snapshots; 100 % CPU is one full core.

    ``server_cpu_pct`` sums every process of the server under test; with more
    than one (E: node A, node B, Redis) each also gets ``<role>_cpu_pct``.
    """
    dt = max(b.t - a.t, 1e-9)
    client = (b.client_cpu_s - a.client_cpu_s) / dt * 100
    roles = {
        role: (b.server_cpu_s[role] - a.server_cpu_s.get(role, 0.0)) / dt * 100
        for role in b.server_cpu_s
    }
    server = sum(roles.values())
    busy = (b.busy_s - a.busy_s) / dt * 100
    frames = b.ev_frames - a.ev_frames
    per_role = {f"{role}_cpu_pct": round(pct, 1) for role, pct in roles.items()}
    return {
        **(per_role if len(roles) > 1 else {}),
        "window_s": round(dt, 3),
        "deliveries_per_s": round((b.deliveries - a.deliveries) / dt, 1),
        "posts_per_s": round((b.acks_ok - a.acks_ok) / dt, 1),
        # Above 1: the server batched several events into one frame to a connection.
        "envelopes_per_frame": round((b.deliveries - a.deliveries) / frames, 2) if frames else 0.0,
        "client_cpu_pct": round(client, 1),
        "server_cpu_pct": round(server, 1),
        # Busy time of everything else on the machine: the noise of the run.
        "other_cpu_pct": round(max(busy - client - server, 0.0), 1),
    }


def percentiles_ms(samples_ns: list[int], expected: int) -> dict[str, float | None]:
    """p50/p90/p99/max by nearest rank, in milliseconds, over ``expected`` deliveries.

    Deliveries that never arrived count as infinitely late: a percentile that
    falls among them is None (printed as "lost"), instead of a flattering
    figure computed over the survivors only.
    """
    ordered = sorted(samples_ns)
    n = max(expected, len(ordered))
    if n == 0:
        return {"p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None}

    def rank(q: float) -> float | None:
        i = max(0, math.ceil(q * n) - 1)
        return round(ordered[i] / 1e6, 3) if i < len(ordered) else None

    return {
        "p50_ms": rank(0.50),
        "p90_ms": rank(0.90),
        "p99_ms": rank(0.99),
        "max_ms": rank(1.0),
    }
