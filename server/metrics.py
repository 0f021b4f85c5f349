"""Prometheus metrics of one node: every definition is here, one registry per app.

A registry per ``Metrics`` (per app), not prometheus_client's global one: unit
tests build several apps in one process, and a second registration of a name
in one registry raises ``Duplicated timeseries``.

Two kinds of values:

* **Moved on the way** (counters, histograms), by the code that sees the
  thing happen, once per batch, never per recipient: a commit observes once
  per group commit, the hub once per delivered batch, the log's delivery
  once per committed run of an incident.
* **Read at scrape** (``watch``): gauges of state the node holds anyway
  (connections, follows, writer and feed health), computed only when
  Prometheus asks, so they cost nothing in between.

Webhook delivery reports its own counters and gauges through ``watch``
(server/services/webhook_delivery.py), as Web Push does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

#: Seconds. A group commit is one fsync (SQLite FULL) or one Redis round
#: trip: about 1-20 ms on these machines; the tail shows storage trouble.
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: Seconds. Handing one batch to every follower of an incident on this node:
#: microseconds for a few followers, milliseconds for thousands.
FANOUT_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500)
WEBHOOK_LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)
GC_PAUSE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

#: Follow outcomes (SPEC §11.2 statuses); "ok" is counted as "served".
FOLLOW_OUTCOMES = ("served", "resync_required", "out_of_range", "unavailable", "not_found")
#: Why a login was refused: a wrong password or unknown name, or a throttle.
LOGIN_FAILURES = ("unauthenticated", "rate_limited")
#: Admission rules (server/transport/admission.py) that refuse connections.
ADMISSION_RULES = ("global_cap", "per_address_cap", "connect_rate", "per_user", "bad_token")


@dataclass(frozen=True, slots=True)
class _Watched:
    name: str
    doc: str
    counter: bool
    read: Callable[[], float]


class _Watcher(Collector):
    """Values read at scrape time from the node's own state."""

    def __init__(self) -> None:
        self.watched: list[_Watched] = []

    def collect(self) -> Iterable[Metric]:
        for w in self.watched:
            family = CounterMetricFamily if w.counter else GaugeMetricFamily
            yield family(w.name, w.doc, value=w.read())


class Metrics:
    """The instruments of one node; see ``deploy/README.md`` (Health) for each."""

    def __init__(self, *, process: bool = True) -> None:
        self.registry = CollectorRegistry()
        if process:  # CPU, memory, open files of this process (Linux only)
            ProcessCollector(registry=self.registry)
            GCCollector(registry=self.registry)  # collections and their yield, per generation
        r = self.registry
        self.events_appended = Counter(
            "liaison_events_appended", "Events stored by this node's writer.", registry=r
        )
        self.commits = Counter("liaison_commits", "Group commits written.", registry=r)
        self.commit_latency = Histogram(
            "liaison_commit_latency_seconds",
            "Per group commit: from the enqueue of its oldest append to the durable ack.",
            buckets=COMMIT_BUCKETS,
            registry=r,
        )
        self.commit_batch = Histogram(
            "liaison_commit_batch_size",
            "Appends per group commit.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.fanout_latency = Histogram(
            "liaison_fanout_latency_seconds",
            "Per committed batch of an incident: from the log handing it to the hub to the"
            " last follower on this node being handed its envelopes.",
            buckets=FANOUT_BUCKETS,
            registry=r,
        )
        gc_pause = Histogram(
            "liaison_gc_pause_seconds",
            "Garbage collections by generation: how long each held the GIL (every"
            " connection of the node waits that long).",
            ["generation"],
            buckets=GC_PAUSE_BUCKETS,
            registry=r,
        )
        self._gc_pauses = tuple(gc_pause.labels(str(g)) for g in range(3))
        self.webhook_lag = Histogram(
            "liaison_webhook_lag_seconds",
            "Per webhook delivered: from its event's commit to the receiver's 2xx.",
            buckets=WEBHOOK_LAG_BUCKETS,
            registry=r,
        )
        follows = Counter(
            "liaison_follow_outcomes",
            "Follow (and resume) targets by outcome.",
            ["outcome"],
            registry=r,
        )
        self.follow_outcomes = {o: follows.labels(o) for o in FOLLOW_OUTCOMES}
        self.slow_consumer_cutoffs = Counter(
            "liaison_slow_consumer_cutoffs",
            "Connections cut off because their outbound buffer overflowed (or their"
            " stream could not be kept whole); the client resumes by seq.",
            registry=r,
        )
        logins = Counter(
            "liaison_login_failures", "Refused password logins by reason.", ["reason"], registry=r
        )
        self.login_failures = {reason: logins.labels(reason) for reason in LOGIN_FAILURES}
        refusals = Counter(
            "liaison_connect_refusals",
            "Socket.IO sessions and connects refused by admission rule.",
            ["rule"],
            registry=r,
        )
        self.connect_refusals = {rule: refusals.labels(rule) for rule in ADMISSION_RULES}
        self._watcher = _Watcher()
        r.register(self._watcher)

    # ------------------------------------------------------------- hooks

    def watch(
        self, name: str, doc: str, read: Callable[[], float], *, counter: bool = False
    ) -> None:
        """Report ``read()`` as ``name`` at every scrape (a counter gets ``_total``)."""
        self._watcher.watched.append(_Watched(name, doc, counter, read))

    def gc_paused(self, generation: int, seconds: float) -> None:
        """One garbage collection of ``generation`` (0-2) took ``seconds``."""
        self._gc_pauses[generation].observe(seconds)

    def committed(self, appends: int, seconds: float) -> None:
        """One group commit of ``appends`` whose oldest waited ``seconds`` for its ack."""
        self.commits.inc()
        self.commit_batch.observe(appends)
        self.commit_latency.observe(seconds)

    def follow_outcome(self, status: str) -> None:
        counter = self.follow_outcomes.get("served" if status == "ok" else status)
        if counter is not None:
            counter.inc()


_unregistered: Metrics | None = None


def unregistered() -> Metrics:
    """Metrics nobody scrapes: the default of parts built without an app (unit tests)."""
    global _unregistered  # one shared sink, made on first use
    if _unregistered is None:
        _unregistered = Metrics(process=False)
    return _unregistered
