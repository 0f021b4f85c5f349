"""RedisEventLog: incident logs in Redis Streams, shared by many server nodes.

Write path::

    append() ─▶ pending ─▶ writer takes all, groups them per incident, and per
                incident: claim each client id for its user (claim.lua, one
                call per user) and look it up in the incident (one pipelined
                round trip), sequence and chain the
                drafts from the cached head, then one EVALSHA of append.lua
                (compare-and-set on the head; XADD each; move the head; PUBLISH)
             ◀─ "ok": hand the run to the broker (deliver), then acknowledge
                "moved": another node appended first; re-read the head, redo
                "dup": a concurrent retry won; re-check the client ids

Client ids are scoped to the user across all incidents (SPEC §12). The
append script touches one incident's slot only (Redis Cluster), so the user
scope is a separate record: ``HSETNX`` of ``cids_key(user)[client id] =
incident + type`` before the append (claim.lua, one key: one slot). The
first claim wins atomically; a later draft whose claim names another
incident or type is refused with
ClientIdReused, one that names the same action is a retry and goes on to the
per-incident check, where the script's HEXISTS keeps it stored once. A claim
outlives a failed append: the id stays bound to its action, which is what a
client retrying with the same id needs.

Outcome: a connection error or timeout *after* the script was sent leaves
the write's outcome unknown (Redis may well have applied it). That is
StorageOutcomeUnknown, not StorageUnavailable ("not stored"): the client
retries with the same id and gets the stored event back if it was.

Why compare-and-set instead of assigning seq inside the script: every event
carries a sha256 hash chain and Redis Lua only offers sha1. The script still
decides atomically whether the run is appended, so seq stays gapless and the
fan-out order is the seq order. Runs of one incident are appended one at a
time per node; contention only costs a retry when two nodes write the same
incident in the same instant.

Durability: an append is acknowledged when Redis has applied it, so run Redis
with ``appendonly yes`` and ``appendfsync always`` (deploy/redis/redis.conf).
``everysec`` is not enough: while a background fsync runs, Redis holds back
its AOF writes for up to 2 s yet still replies, and a ``kill -9`` then lost
acknowledged events (9 of 2,000 in 1 of 8 runs); a power cut can cost ~1 s.
Nothing is ever trimmed from a log (``MAXLEN ~`` can drop unread entries).

Replicas: by default the master's answer is the ack, and a failover can lose
what the replicas had not received. With ``min_replicas`` (the durable
setting) a batch's appends run on futures of its own and the script does not
publish; one WAIT for the whole batch (redis_replicas.py) comes first, then
this node's feeds, the acks and the PUBLISH of each run. Unconfirmed, every
append of the batch is StorageOutcomeUnknown.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import redis.asyncio as aioredis
from redis.commands.core import AsyncScript as Script
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from server.domain import chain, summary
from server.domain.chain import ChainHead
from server.domain.events import AppendResult, EventDraft, StoredEvent
from server.errors import (
    ClientIdReused,
    IncidentArchived,
    LogNotFound,
    StorageOutcomeUnknown,
    StorageUnavailable,
)
from server.storage import redis_connect, redis_search
from server.storage import redis_keys as keys
from server.storage.base import (
    Deliver,
    IncidentPage,
    IncidentQuery,
    IndexCursor,
    LogHead,
    Tombstone,
    is_same_action,
)
from server.storage.codec import pack_event, pack_events, unpack_event
from server.storage.group_commit import GroupCommitQueue, Pending, fail, settle
from server.storage.redis_archive import RedisArchive
from server.storage.redis_replicas import ReplicaWait

log = logging.getLogger(__name__)

APPEND_LUA = (Path(__file__).parent / "lua" / "append.lua").read_text()
HEADER_LUA = (Path(__file__).parent / "lua" / "header.lua").read_text()
CLAIM_LUA = (Path(__file__).parent / "lua" / "claim.lua").read_text()

#: How often one run may lose the compare-and-set race before giving up.
MAX_ATTEMPTS = 20

#: Unannounced events (durable mode) remembered at most; beyond, forgotten.
MAX_UNANNOUNCED = 10_000

#: Index entries one ``list_incidents`` call reads at most.
INDEX_SCAN = 1_000
#: Heads asked for in one pipelined round trip by ``heads``.
HEADS_PER_ROUND_TRIP = 1_000


@dataclass(frozen=True, slots=True)
class RedisConfig:
    url: str
    #: Names this node in probes and presence; unique per process.
    node_id: str
    max_batch: int = 500
    #: Connections to Redis per node (commands, not the pub/sub one). Callers
    #: beyond that wait up to ``pool_timeout_s`` for one: redis-py 8's default
    #: pool raises MaxConnectionsError at 100 instead (measured: 58-64 of 200
    #: concurrent follows failed).
    max_connections: int = 64
    pool_timeout_s: float = 5.0
    #: Replicas that must confirm a batch before it is acknowledged (0: none,
    #: the master's answer is the ack); see redis_replicas.py.
    min_replicas: int = 0
    #: How long a batch waits for them before it is ``outcome_unknown``.
    replica_timeout_ms: int = 1000


def connect(config: RedisConfig) -> aioredis.Redis:
    """The command client a node's Redis backends share (not the pub/sub one)."""
    return redis_connect.command_client(config.url, config.max_connections, config.pool_timeout_s)


#: A run stored by a durable batch, held back until the replicas confirm it:
#: the incident, its events, and the publish payload.
Held = tuple[str, list[StoredEvent], bytes]


def _idem_field(draft: EventDraft) -> str:
    return f"{draft.actor_user}\x00{draft.client_id}"


def _claim(draft: EventDraft) -> str:
    """What a user's client id is bound to: the incident and the event type."""
    return f"{draft.incident}\x00{draft.type}"


def _claim_matches(claim: bytes | None, draft: EventDraft) -> bool:
    """``is_same_action`` on a claim instead of a stored event."""
    if claim is None:  # cannot happen right after HSETNX; nothing to compare
        return True
    incident, _, kind = claim.decode().partition("\x00")
    if kind != draft.type:
        return False
    return draft.type == "incident.created" or incident == draft.incident


def _split_repeats(run: list[Pending]) -> tuple[list[Pending], list[Pending]]:
    """The first draft of each client id, and the repeats of one in the same run."""
    firsts: list[Pending] = []
    repeats: list[Pending] = []
    seen: set[str] = set()
    for item in run:
        key = _idem_field(item[0])
        (repeats if key in seen else firsts).append(item)
        seen.add(key)
    return firsts, repeats


class RedisLogReader:
    """Reads of the incident logs: stateless, so a broker can fill gaps with one
    of its own (server/backends.py) without holding the writer."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.redis = client

    async def read(self, incident: str, after_seq: int, limit: int) -> list[StoredEvent]:
        try:
            entries: Any = await self.redis.xrange(
                keys.log_key(incident), min=f"{after_seq + 1}-0", max="+", count=max(1, limit)
            )
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(str(exc)) from exc
        return [unpack_event(fields[b"e"]) for _, fields in entries]

    async def text_matches(
        self, incident: str, terms: Sequence[str], after_seq: int, before_seq: int
    ) -> list[int]:
        return await redis_search.text_matches(self.redis, incident, terms, after_seq, before_seq)

    async def head(self, incident: str) -> LogHead | None:
        try:
            fields: Any = await self.redis.hmget(keys.head_key(incident), ["epoch", "seq"])
            epoch, seq = fields
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(str(exc)) from exc
        return LogHead(epoch.decode(), int(seq)) if epoch is not None else None

    async def heads(self, incidents: Sequence[str]) -> dict[str, LogHead]:
        wanted = list(dict.fromkeys(incidents))
        found: dict[str, LogHead] = {}
        try:
            for start in range(0, len(wanted), HEADS_PER_ROUND_TRIP):
                chunk = wanted[start : start + HEADS_PER_ROUND_TRIP]
                async with self.redis.pipeline(transaction=False) as pipe:
                    for incident in chunk:
                        _ = pipe.hmget(keys.head_key(incident), ["epoch", "seq"])
                    replies: Any = await pipe.execute()
                for incident, (epoch, seq) in zip(chunk, replies, strict=True):
                    if epoch is not None:
                        found[incident] = LogHead(epoch.decode(), int(seq))
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(str(exc)) from exc
        return found


class RedisEventLog(RedisLogReader):
    """The EventLog of the Redis backend; its broker is RedisBroker.

    ``client`` is shared with the node's other Redis backends and closed by
    whoever built them (server/backends.py), not by the log.
    """

    def __init__(self, config: RedisConfig, client: aioredis.Redis, deliver: Deliver) -> None:
        super().__init__(client)
        self.config = config
        self._deliver = deliver
        self._script = self.redis.register_script(APPEND_LUA)
        self._header_script = self.redis.register_script(HEADER_LUA)
        self._claim_script = self.redis.register_script(CLAIM_LUA)
        self._terms_script = self.redis.register_script(redis_search.TERMS_LUA)
        self._archive = RedisArchive(self.redis, _decode_header)
        self._heads: dict[str, ChainHead] = {}
        #: Participating organisations per incident, cached beside the head and
        #: forgotten with it: an append that succeeded on the cached head saw
        #: every header event before it, so the cache is current.
        self._orgs: dict[str, dict[str, int]] = {}
        self._queue = GroupCommitQueue(self._commit, config.max_batch, "redis-writer")
        self._replicas = (
            ReplicaWait(config.min_replicas, config.replica_timeout_ms)
            if config.min_replicas > 0
            else None
        )
        #: The runs of the durable batch being committed (None: not durable).
        self._held: list[Held] | None = None
        #: Events stored by unconfirmed batches and never announced, as
        #: (incident, seq, hash): announced when a retry finds them confirmed.
        self._unannounced: set[tuple[str, int, str]] = set()

    @property
    def writer(self) -> GroupCommitQueue:
        """The group-commit writer (its ``observer`` is the app's commit metrics)."""
        return self._queue

    async def start(self) -> None:
        if self._replicas is not None:
            await self._replicas.detect(self.redis)
        await self._index_missing()
        try:
            await redis_search.index_older(self.redis, self.read)
        except (RedisError, OSError, StorageUnavailable):
            log.exception("text search: could not index older events at start")
        self._queue.start()

    async def close(self) -> None:
        await self._queue.close()

    # ------------------------------------------------------------------ write

    def enqueue(self, draft: EventDraft) -> asyncio.Future[AppendResult]:
        return self._queue.enqueue(draft)

    async def append(self, draft: EventDraft) -> AppendResult:
        return await self.enqueue(draft)

    async def _commit(self, batch: list[Pending]) -> None:
        if self._replicas is None:
            await self._commit_runs(batch)
        else:
            await self._commit_durable(batch, self._replicas)

    async def _commit_durable(self, batch: list[Pending], replicas: ReplicaWait) -> None:
        """The batch on futures of its own; answered, delivered and published only
        once the replicas confirmed it (redis_replicas.py)."""
        loop = asyncio.get_running_loop()
        staged: list[Pending] = [(draft, loop.create_future()) for draft, _ in batch]
        self._held = []
        try:
            await self._commit_runs(staged)
            held = self._held
        finally:
            self._held = None
        unconfirmed: StorageOutcomeUnknown | None = None
        try:
            await replicas.confirm(self.redis)
        except StorageOutcomeUnknown as exc:
            unconfirmed = exc
            log.warning("a batch of %d appends is unconfirmed: %s", len(batch), exc)
            for draft, _ in batch:
                self._forget(draft.incident)
            if len(self._unannounced) > MAX_UNANNOUNCED:
                self._unannounced.clear()  # they reach followers by gap fills instead
            self._unannounced.update((i, ev.seq, ev.hash) for i, events, _ in held for ev in events)
        else:
            held = self._retried(staged) + held
            for incident, events, _ in held:
                self._deliver(incident, events)  # before the acks, as in _try_append
        for (_, real), (_, fut) in zip(batch, staged, strict=True):
            _answer(real, fut, unconfirmed)
        if unconfirmed is None and held:
            await self._publish(held)

    def _retried(self, staged: list[Pending]) -> list[Held]:
        """The never-announced events that retries were answered with, per incident.

        A retry after ``outcome_unknown`` finds its event stored, but its batch
        went unconfirmed, so it was never announced; now that the replicas
        confirmed it, it is announced like a new one (and counted once).
        """
        found: dict[str, dict[int, StoredEvent]] = {}
        for _, fut in staged:
            if not fut.done() or fut.exception() is not None or not fut.result().duplicate:
                continue
            event = fut.result().event
            key = (event.incident, event.seq, event.hash)
            if key in self._unannounced:
                self._unannounced.discard(key)
                found.setdefault(event.incident, {})[event.seq] = event
        out: list[Held] = []
        for incident, by_seq in found.items():
            events = [by_seq[seq] for seq in sorted(by_seq)]
            out.append((incident, events, pack_events([pack_event(ev) for ev in events])))
        return out

    async def _publish(self, held: list[Held]) -> None:
        """Wake the other nodes for confirmed runs (the append script did not).

        A failure is logged: the events are stored and confirmed; a node
        that missed the wake-up fills the gap at the incident's next event or
        when its subscriber reconnects (server/fanout/redis.py).
        """
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for incident, _, payload in held:
                    _ = pipe.publish(keys.channel(incident), payload)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("could not publish %d confirmed runs: %s", len(held), exc)

    async def _commit_runs(self, batch: list[Pending]) -> None:
        """One batch: a run per incident, the runs of different incidents concurrently."""
        runs: dict[str, list[Pending]] = {}
        for item in batch:
            runs.setdefault(item[0].incident, []).append(item)
        await asyncio.gather(*(self._append_run(i, run) for i, run in runs.items()))

    async def _append_run(self, incident: str, run: list[Pending]) -> None:
        """Append one incident's drafts; a repeated client id waits for its first.

        A repeat is answered from the log once the first is settled, never
        from the first caller's future: that one may have been cancelled by
        its caller (a connection that dropped) while the write went ahead.
        """
        while run:
            firsts, run = _split_repeats(run)
            error = await self._append_firsts(incident, firsts)
            if error is not None:
                for _, fut in run:
                    fail(fut, error)
                return

    async def _append_firsts(
        self, incident: str, run: list[Pending]
    ) -> StorageUnavailable | StorageOutcomeUnknown | None:
        """Append drafts with distinct client ids; the error that failed them, if any."""
        error: StorageUnavailable | StorageOutcomeUnknown
        try:
            for _ in range(MAX_ATTEMPTS):
                run = await self._settle_retries(incident, run)
                if not run or await self._try_append(incident, run):
                    return None
            raise StorageUnavailable(f"too much contention on {incident}")
        except StorageOutcomeUnknown as exc:
            error = exc
        except (RedisError, OSError, StorageUnavailable) as exc:
            error = exc if isinstance(exc, StorageUnavailable) else StorageUnavailable(str(exc))
        self._forget(incident)
        log.warning("append of %d events to %s failed: %r", len(run), incident, error)
        for _, fut in run:
            fail(fut, error)
        return error

    async def _settle_retries(self, incident: str, run: list[Pending]) -> list[Pending]:
        """Claim each client id for its user, answer retries; return the drafts to append."""
        claims, stored = await self._claims_and_stored(incident, run)
        fresh: list[Pending] = []
        for (draft, fut), claim, seq in zip(run, claims, stored, strict=True):
            reused = ClientIdReused(f"id {draft.client_id!r} was used for another action")
            if not _claim_matches(claim, draft):
                fail(fut, reused)
            elif seq is None and (earlier := await self._created_elsewhere(claim, draft)):
                settle(fut, AppendResult(earlier, duplicate=True))
            elif seq is None:
                fresh.append((draft, fut))
            else:
                original = await self._event_at(incident, int(seq))
                if original is None:
                    fail(fut, StorageUnavailable("idempotency entry without event"))
                elif is_same_action(original, draft):
                    settle(fut, AppendResult(original, duplicate=True))
                else:
                    fail(fut, reused)
        return fresh

    async def _claims_and_stored(
        self, incident: str, run: list[Pending]
    ) -> tuple[list[bytes | None], list[bytes | None]]:
        """Per draft, the claim that holds its client id (claim.lua, one call per
        user) and the seq the incident stored for it (HMGET): one round trip,
        not atomic. A script Redis lost (NOSCRIPT: a restart, a promoted
        replica) is loaded and the round trip made again; claiming is
        idempotent (a claim of ours answers as ours)."""
        by_user: dict[str, list[int]] = {}
        for i, (draft, _) in enumerate(run):
            by_user.setdefault(draft.actor_user, []).append(i)
        fields = [_idem_field(d) for d, _ in run]
        for _ in range(2):
            pipe: Any = self.redis.pipeline(transaction=False)
            for user, members in by_user.items():
                pairs = [x for i in members for x in (run[i][0].client_id, _claim(run[i][0]))]
                _ = pipe.evalsha(self._claim_script.sha, 1, keys.cids_key(user), *pairs)
            _ = pipe.hmget(keys.idem_key(incident), fields)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
            if not any(isinstance(r, NoScriptError) for r in replies):
                break
            self._claim_script.sha = await self.redis.script_load(self._claim_script.script)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        claims: list[bytes | None] = [None] * len(run)
        for members, held in zip(by_user.values(), replies[:-1], strict=True):
            for i, claim in zip(members, held, strict=True):
                claims[i] = claim if claim is not None else _claim(run[i][0]).encode()
        return claims, list(replies[-1])

    async def _created_elsewhere(
        self, claim: bytes | None, draft: EventDraft
    ) -> StoredEvent | None:
        """The incident a retried creation made under another id (``is_same_action``)."""
        claimed = claim.decode().partition("\x00")[0] if claim is not None else draft.incident
        if claimed == draft.incident:
            return None
        return await self.find(claimed, draft.actor_user, draft.client_id)

    async def _try_append(self, incident: str, run: list[Pending]) -> bool:
        head = await self._head_for_write(incident)
        creating = run[0][0].type == "incident.created"
        if creating and await self.redis.exists(keys.tombstone_key(incident)):
            # A retried creation of an archived incident (SPEC 12, 25.4): before
            # the head check (another node's archive leaves this node's cached
            # head behind) and the index writes below; append.lua checks again.
            self._forget(incident)
            for _, fut in run:
                fail(fut, IncidentArchived(f"incident {incident} was archived"))
            return True
        if creating and head is not None:
            for _, fut in run:
                fail(fut, LogNotFound(f"incident {incident} exists already"))
            return True
        if head is None and not creating:
            for _, fut in run:
                fail(fut, LogNotFound(f"no log for incident {incident}"))
            return True
        if head is None:
            epoch = run[0][0].epoch
            assert epoch is not None
            head = ChainHead(epoch, 0, chain.GENESIS, 0)
        start, cursor = head, head.copy()  # the cached head moves only once stored
        now = int(time.time() * 1000)
        events = [cursor.append(draft, now) for draft, _ in run]
        packed = [pack_event(ev) for ev in events]
        payload = pack_events(packed)
        args: list[str | int | bytes] = [
            start.seq,
            start.hash,
            cursor.seq,
            cursor.hash,
            cursor.ts_ms,
            start.epoch if creating else "",
            keys.channel(incident) if self._held is None else "",  # durable: after WAIT
            payload,
        ]
        for (draft, _), ev, blob in zip(run, events, packed, strict=True):
            args += [_idem_field(draft), ev.seq, blob]
        if creating:
            await self.redis.zadd(keys.INCIDENTS, {incident: now}, nx=True)
        for ref in _refs_set(events):
            await self.redis.sadd(keys.ref_key(ref), incident)
        header = _header_args(events)
        terms = redis_search.term_writes(incident, events)
        if header or terms[0]:
            reply = await self._eval_with_header(incident, args, cursor.hash, header, terms)
        else:
            reply = await self._eval(incident, args)
        if reply[0] == b"ok":
            self._heads[incident] = cursor
            if self._held is None:
                self._deliver(incident, events)  # before the acks: an ack never overtakes
            else:
                self._held.append((incident, events, payload))
            await self._touch_index(incident, events)
            for (_, fut), ev in zip(run, events, strict=True):
                settle(fut, AppendResult(ev, duplicate=False))
            return True
        self._forget(incident)
        if reply[0] == b"archived":  # archived between the check above and the script
            for _, fut in run:
                fail(fut, IncidentArchived(f"incident {incident} was archived"))
            return True
        return False  # "moved" or "dup": look again

    def _forget(self, incident: str) -> None:
        self._heads.pop(incident, None)
        self._orgs.pop(incident, None)

    async def _eval(self, incident: str, args: list[str | int | bytes]) -> list[bytes]:
        """Run append.lua; StorageOutcomeUnknown if it was sent but not answered."""
        script_keys = _script_keys(incident)
        try:
            try:
                reply: list[bytes] = await self._script(keys=script_keys, args=args)
            except NoScriptError:  # Redis restarted and lost its script cache
                reply = await self.redis.eval(APPEND_LUA, len(script_keys), *script_keys, *args)
        except (RedisTimeoutError, RedisConnectionError, OSError) as exc:
            # Redis may have applied the script and only the reply was lost.
            # (A pool wait that timed out lands here too: unknown is the safe
            # side of "not stored", and the retry is idempotent either way.)
            raise StorageOutcomeUnknown(f"no answer to the append on {incident}: {exc}") from exc
        return reply

    async def _eval_with_header(
        self,
        incident: str,
        args: list[str | int | bytes],
        head_hash: str,
        header: list[Any],
        terms: tuple[list[str], list[int]],
    ) -> list[bytes]:
        """The append, the header merge and the words of its events in one MULTI (one slot).

        The scripts go in as plain EVALSHA: a pipeline holding redis-py
        ``Script`` objects first sends SCRIPT EXISTS for them, one more round
        trip before every append. A script Redis has lost (a restart, a
        promoted replica) answers NOSCRIPT inside the EXEC: those are loaded
        and sent again. Nothing is applied twice: header.lua and terms.lua run
        only when the head is the one this append produced, and both are
        idempotent, while append.lua is a compare-and-set that a second time
        finds the head moved.
        """
        script_keys = _script_keys(incident)
        calls: list[tuple[Script, list[Any]]] = [(self._script, [*script_keys, *args])]
        if header:
            header_keys = [keys.summary_key(incident), keys.head_key(incident)]
            calls.append((self._header_script, [*header_keys, head_hash, *header]))
        if terms[0]:
            term_keys = [keys.head_key(incident), *terms[0]]
            calls.append((self._terms_script, [*term_keys, head_hash, *terms[1]]))
        numkeys = {
            self._script: len(script_keys),
            self._header_script: 2,
            self._terms_script: 1 + len(terms[0]),
        }
        replies: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))  # indexes into calls of what to send
        try:
            for _ in range(2):
                async with self.redis.pipeline(transaction=True) as pipe:
                    for i in todo:
                        script, values = calls[i]
                        _ = pipe.evalsha(script.sha, numkeys[script], *values)
                    answers: list[Any] = await pipe.execute(raise_on_error=False)
                for i, answer in zip(todo, answers, strict=True):
                    replies[i] = answer
                lost = [i for i in todo if isinstance(replies[i], NoScriptError)]
                if not lost:
                    break
                for i in lost:
                    script = calls[i][0]
                    script.sha = await self.redis.script_load(script.script)
                # Without the append nothing of the MULTI was applied: all
                # again; after it, only what was lost.
                todo = list(range(len(calls))) if lost[0] == 0 else lost
        except (RedisTimeoutError, RedisConnectionError, OSError) as exc:
            # As in _eval: the MULTI may have been applied, only its reply lost.
            raise StorageOutcomeUnknown(f"no answer to the append on {incident}: {exc}") from exc
        for answer in replies:
            if isinstance(answer, Exception):
                raise answer
        return list(replies[0])

    async def _touch_index(self, incident: str, events: list[StoredEvent]) -> None:
        """Move the incident up the index orders: the global one, and each
        organisation's that sees one of the events. A failure here leaves the
        order behind until the incident's next append; the events are stored,
        so it is logged, not raised."""
        try:
            orgs = await self._orgs_after(incident, events)
            per_org = _last_seen_per_org(events, orgs)
            async with self.redis.pipeline(transaction=False) as pipe:
                _ = pipe.zadd(keys.INDEX, {incident: events[-1].ts_ms}, gt=True)
                for org, ts in per_org.items():
                    _ = pipe.zadd(keys.org_index_key(org), {incident: ts}, gt=True)
                await pipe.execute()
        except (RedisError, OSError) as exc:  # Redis away (a failover): expected, not a bug
            log.warning(
                "incident index: could not move %s to %d: %s", incident, events[-1].ts_ms, exc
            )

    async def _orgs_after(self, incident: str, events: list[StoredEvent]) -> dict[str, int]:
        """The incident's organisations, with their join seqs, once ``events``
        (just stored) are applied."""
        orgs = self._orgs.get(incident)
        if orgs is None:
            # Read after the append: its header events are in the summary.
            raw: Any = await self.redis.hgetall(keys.summary_key(incident))
            orgs = summary.joined_of(_decode_header(raw))
            self._orgs[incident] = orgs
            return orgs
        for ev in events:
            for key, _ in summary.changes(ev):
                if key.startswith("org:"):
                    orgs.setdefault(key[len("org:") :], ev.seq)
        return orgs

    async def _index_missing(self) -> None:
        """Index incidents stored before the index existed (a one-off on upgrade).

        Also repairs an incident whose creation was stored by a node that died
        before it put the incident in the index order. If Redis is unreachable
        now, the next start does it; this node serves meanwhile.
        """
        try:
            logs: Any = await self.redis.zrange(keys.INCIDENTS, 0, -1)
            indexed: Any = await self.redis.zrange(keys.INDEX, 0, -1)
            for member in set(logs) - set(indexed):
                await self._index_one(member.decode())
            if not await self.redis.exists(keys.ORG_INDEX_BUILT):
                for member in logs:
                    await self._index_orgs(member.decode())
                await self.redis.set(keys.ORG_INDEX_BUILT, "1")
                log.info("incident index: per-organisation orders built for %d", len(logs))
        except (RedisError, OSError, StorageUnavailable):
            log.exception("incident index: could not index older incidents at start")

    async def _index_orgs(self, incident: str) -> None:
        """Put an incident in its organisations' index orders, from its whole log."""
        events: list[StoredEvent] = []
        while batch := await self.read(incident, events[-1].seq if events else 0, 1_000):
            events += batch
        if not events:
            return
        header: summary.Header = {}
        summary.merge(header, events)
        per_org = _last_seen_per_org(events, summary.joined_of(header))
        async with self.redis.pipeline(transaction=False) as pipe:
            for org, ts in per_org.items():
                _ = pipe.zadd(keys.org_index_key(org), {incident: ts}, gt=True)
            await pipe.execute()

    async def _index_one(self, incident: str) -> None:
        fields: Any = await self.redis.hmget(keys.head_key(incident), ["hash", "ts"])
        head_hash, ts = fields
        if head_hash is None:
            return  # registered, but its creation was never appended
        header: list[Any] = []
        after = 0
        while events := await self.read(incident, after, 1_000):
            header += _header_args(events)
            after = events[-1].seq
        await self._header_script(
            keys=[keys.summary_key(incident), keys.head_key(incident)],
            args=[head_hash.decode(), *header],
        )
        await self.redis.zadd(keys.INDEX, {incident: int(ts)}, gt=True)
        await self._index_orgs(incident)
        log.info("indexed incident %s stored before the incident index", incident)

    async def _head_for_write(self, incident: str) -> ChainHead | None:
        head = self._heads.get(incident)
        if head is None:
            fields: Any = await self.redis.hmget(
                keys.head_key(incident), ["epoch", "seq", "hash", "ts"]
            )
            epoch, seq, hash_, ts = fields
            if epoch is None:
                return None
            head = self._heads[incident] = ChainHead(
                epoch.decode(), int(seq), hash_.decode(), int(ts)
            )
        return head

    # ------------------------------------------------------------------- read

    async def _event_at(self, incident: str, seq: int) -> StoredEvent | None:
        events = await self.read(incident, seq - 1, 1)
        return events[0] if events and events[0].seq == seq else None

    async def find(self, incident: str, actor_user: str, client_id: str) -> StoredEvent | None:
        try:
            seq = await self.redis.hget(keys.idem_key(incident), f"{actor_user}\x00{client_id}")
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(str(exc)) from exc
        return await self._event_at(incident, int(seq)) if seq is not None else None

    def health(self) -> dict[str, Any]:
        writer = self._queue.stats()
        return {
            "healthy": writer["healthy"],
            "backend": "redis",
            "node": self.config.node_id,
            "writer": writer,
        }

    async def incidents(self) -> list[str]:
        try:
            members: Any = await self.redis.zrange(keys.INCIDENTS, 0, -1)
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(str(exc)) from exc
        return [m.decode() for m in members]

    async def participates(self, incident: str, org: str) -> bool:
        try:
            found: Any = await self.redis.hexists(keys.summary_key(incident), "org:" + org)
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(str(exc)) from exc
        return bool(found)

    async def list_incidents(self, query: IncidentQuery) -> IncidentPage:
        """Walk the index order from the cursor, filtering each entry's summary.

        At most ``INDEX_SCAN`` entries per call: an organisation that takes
        part in few of many incidents gets short pages with a ``next`` cursor
        rather than one request that reads the whole index.
        """
        if query.ref is not None:
            return await self._by_ref(query)
        high: float | str = query.after[0] if query.after else "+inf"
        low = f"({query.updated_after}" if query.updated_after is not None else "-inf"
        chunk = min(max(query.limit + 1, 100), INDEX_SCAN)
        found: list[tuple[IndexCursor, dict[str, Any]]] = []
        offset = scanned = 0
        position: IndexCursor | None = None
        try:
            while scanned < INDEX_SCAN:
                entries: Any = await self.redis.zrevrangebyscore(
                    keys.org_index_key(query.org),
                    high,
                    low,
                    start=offset,
                    num=chunk,
                    withscores=True,
                )
                offset += len(entries)
                batch = [(int(score), m.decode()) for m, score in entries]
                if query.after is not None:
                    batch = [p for p in batch if p[0] < query.after[0] or p[1] < query.after[1]]
                for pos, entry in zip(batch, await self._summaries(batch), strict=True):
                    scanned += 1
                    position = pos
                    if entry is not None and query.matches(entry):
                        found.append((pos, entry))
                        if len(found) > query.limit:
                            return IncidentPage([e for _, e in found[:-1]], found[-2][0])
                if len(entries) < chunk:
                    return IncidentPage([e for _, e in found], None)
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(str(exc)) from exc
        return IncidentPage([e for _, e in found], position)

    async def _by_ref(self, query: IncidentQuery) -> IncidentPage:
        """``?ref=`` lookups: the reference's few incidents, each checked against
        its summary (the set may hold one whose reference has changed since)."""
        try:
            members: Any = await self.redis.smembers(keys.ref_key(query.ref or ""))
            incidents = sorted(m.decode() for m in members)
            async with self.redis.pipeline(transaction=False) as pipe:
                for incident in incidents:
                    _ = pipe.zscore(keys.org_index_key(query.org), incident)
                scores: list[Any] = await pipe.execute()
            batch = sorted(
                (
                    (int(score), incident)
                    for incident, score in zip(incidents, scores, strict=True)
                    if score is not None
                ),
                reverse=True,
            )
            if query.after is not None:
                batch = [p for p in batch if p < query.after]
            if query.updated_after is not None:
                batch = [p for p in batch if p[0] > query.updated_after]
            found = [
                (pos, entry)
                for pos, entry in zip(batch, await self._summaries(batch), strict=True)
                if entry is not None and query.matches(entry)
            ]
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(str(exc)) from exc
        more = len(found) > query.limit
        page = found[: query.limit]
        return IncidentPage([e for _, e in page], page[-1][0] if more and page else None)

    # -------------------------------------------------------------- archive

    async def archive(self, incident: str, expect_seq: int, tombstone: Tombstone) -> bool:
        done = await self._archive.archive(incident, expect_seq, tombstone)
        if done:
            self._forget(incident)
        return done

    async def tombstone(self, incident: str) -> Tombstone | None:
        return await self._archive.tombstone(incident)

    async def tombstones(self, after: str, limit: int) -> list[Tombstone]:
        return await self._archive.tombstones(after, limit)

    async def update_tombstone(self, incident: str, tombstone: Tombstone) -> None:
        await self._archive.update_tombstone(incident, tombstone)

    async def _summaries(self, batch: list[IndexCursor]) -> list[dict[str, Any] | None]:
        """Summaries of a batch of one organisation's index entries, in one round
        trip; ``updated`` is the entry's score, the ts of the last event it sees."""
        if not batch:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for _, incident in batch:
                _ = pipe.hgetall(keys.summary_key(incident))  # queued, not sent
                _ = pipe.hget(keys.head_key(incident), "seq")
            replies: list[Any] = await pipe.execute()
        out: list[dict[str, Any] | None] = []
        for i, (updated, incident) in enumerate(batch):
            raw, seq = replies[2 * i], replies[2 * i + 1]
            out.append(
                summary.summary(incident, _decode_header(raw), int(seq), updated)
                if raw and seq is not None
                else None
            )
        return out


def _answer(
    real: asyncio.Future[AppendResult],
    staged: asyncio.Future[AppendResult],
    unconfirmed: StorageOutcomeUnknown | None,
) -> None:
    """Pass a staged answer on; unconfirmed, anything but "not stored" is unknown.

    A ClientIdReused or LogNotFound decided on writes the replicas did not
    confirm could be undone by a failover, so it is not final either.
    """
    if not staged.done():  # cannot happen: every run settles or fails its drafts
        fail(real, StorageUnavailable("the commit did not answer this append"))
        return
    error = staged.exception()
    if unconfirmed is not None and not isinstance(error, StorageUnavailable):
        fail(real, unconfirmed)
    elif error is not None:
        fail(real, error)
    else:
        settle(real, staged.result())


def _script_keys(incident: str) -> list[str]:
    """append.lua's keys: the incident's log, head and idempotency, the feed's, the tombstone."""
    return [
        keys.log_key(incident),
        keys.head_key(incident),
        keys.idem_key(incident),
        keys.FEED,
        keys.FEED_POS,
        keys.tombstone_key(incident),
    ]


def _last_seen_per_org(events: list[StoredEvent], orgs: dict[str, int]) -> dict[str, int]:
    """Per organisation (org -> join seq), the ts of the last of ``events`` it may see."""
    public, per_org = summary.last_seen(events, orgs)
    if public is not None:
        for org in orgs:
            per_org[org] = max(per_org.get(org, 0), public)
    return per_org


def _refs_set(events: list[StoredEvent]) -> set[str]:
    """The external references a run of events sets (for ``keys.ref_key``)."""
    return {
        value
        for ev in events
        if ev.type in summary.HEADER_TYPES
        for key, value in summary.changes(ev)
        if key == "external_ref" and isinstance(value, str)
    }


def _header_args(events: list[StoredEvent]) -> list[Any]:
    """header.lua's triples (key, seq, msgpack value) for the header events of a run."""
    out: list[Any] = []
    for ev in events:
        if ev.type in summary.HEADER_TYPES:
            for key, value in summary.changes(ev):
                out += [key, ev.seq, msgpack.packb(value, use_bin_type=True)]
    return out


def _decode_header(raw: dict[bytes, bytes]) -> summary.Header:
    header: summary.Header = {}
    for name, value in raw.items():
        if not name.startswith(b"#"):
            header[name.decode()] = [int(raw[b"#" + name]), msgpack.unpackb(value, raw=False)]
    return header
