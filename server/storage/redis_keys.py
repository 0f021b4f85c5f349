"""Every Redis key and channel Liaison uses, in one place.

Per-incident keys share the hash tag ``{<incident>}`` so one incident lives in
one Redis Cluster slot and the append script touches a single slot. Per-user
keys share ``{user:<id>}`` likewise.
"""

from __future__ import annotations

PREFIX = "liaison:"

#: ZSET of incident ids scored by creation time (ms).
INCIDENTS = PREFIX + "incidents"
#: ZSET of incident ids scored by the ts of their last event (ms): the order
#: of the incident index. Updated right after each append (ZADD GT, so nodes
#: racing can only move it forward); the head hash stays the truth for seq.
INDEX = PREFIX + "index:updated"
#: Set once every incident stored before per-organisation index orders has
#: been put in them (``RedisEventLog._index_missing``), so a start skips it.
ORG_INDEX_BUILT = PREFIX + "index:org-built"
#: Set once the words of every event stored before text search are indexed
#: (server/storage/redis_search.py ``index_older``).
SEARCH_BUILT = PREFIX + "search:built"
#: The change feed (server/storage/feed.py): a stream with one entry per
#: committed run, id ``<pos>-0``, fields ``k`` (the run's log key), ``f`` and
#: ``l`` (its first and last seq); the counter that numbers them; the feed's
#: epoch. Global keys: with them the append script spans the incident's slot
#: and the feed's, which Redis Cluster refuses (CROSSSLOT). The feed needs one
#: Redis primary (with Sentinel for failover); see deploy/README.md.
FEED = PREFIX + "feed:runs"
FEED_POS = PREFIX + "feed:pos"
FEED_EPOCH = PREFIX + "feed:epoch"
#: ZSET of archived incident ids, all scored 0: listed in id order (ZRANGEBYLEX).
ARCHIVED = PREFIX + "archived"
#: Token secret shared by every node when none is configured.
SECRET = PREFIX + "secret"
#: Directory hashes: org id -> msgpack, user id -> msgpack, username -> user id.
ORGS = PREFIX + "orgs"
USERS = PREFIX + "users"
USERNAMES = PREFIX + "usernames"
#: Counter bumped by every directory write: the nodes' cheap change token.
DIRECTORY_VERSION = PREFIX + "directory:version"
#: Login throttle (server/throttle.py): failure counter and lock, per key
#: (``user:<name>`` or ``addr:<ip>``); both expire by themselves.
LOGIN_FAILURES = PREFIX + "login:failures:"
LOGIN_LOCK = PREFIX + "login:lock:"
#: Counter each durable batch bumps right before its WAIT (redis_replicas.py):
#: WAIT waits for the connection's own last write, so it must make one.
REPLICA_MARK = PREFIX + "replica:mark"


def org_index_key(org: str) -> str:
    """ZSET of the incidents ``org`` takes part in, scored by the ts of the last
    event it may see: its index order and ``updated``. A restricted event moves
    only the organisations that see it (ZADD GT, as INDEX)."""
    return f"{PREFIX}index:org:{org}"


def ref_key(ref: str) -> str:
    """SET of the incidents that carry (or once carried) external reference ``ref``.

    Added to *before* the append that sets it, so a crash between the two
    leaves an extra member, never a missing one; a lookup checks each member's
    summary, which is the truth (``RedisEventLog._by_ref``).
    """
    return f"{PREFIX}ref:{ref}"


def incident_of_log_key(key: str) -> str:
    """``log_key``'s inverse."""
    return key[len(PREFIX) + 1 : -len("}:log")]


def log_key(incident: str) -> str:
    """Stream of the incident's events; entry id ``<seq>-0``, field ``e`` = msgpack."""
    return f"{PREFIX}{{{incident}}}:log"


def head_key(incident: str) -> str:
    """Hash: epoch, seq, hash, ts of the last event."""
    return f"{PREFIX}{{{incident}}}:head"


def idem_key(incident: str) -> str:
    """Hash: "<user>\\0<client id>" -> seq of the event it produced."""
    return f"{PREFIX}{{{incident}}}:idem"


def cids_key(user: str) -> str:
    """Hash: client id -> "<incident>\\0<event type>" it was first used for (SPEC §12).

    Written with HSETNX before an append and never changed: the user-wide
    scope of client ids, which the per-incident ``idem_key`` cannot give.
    """
    return f"{PREFIX}{{user:{user}}}:cids"


def summary_key(incident: str) -> str:
    """Hash: the incident's index header, key -> msgpack value and "#key" -> seq
    (see server/domain/summary.py and lua/header.lua)."""
    return f"{PREFIX}{{{incident}}}:summary"


def term_key(incident: str, term: str) -> str:
    """ZSET: seqs of the incident's events that have the word ``term``, scored by seq."""
    return f"{PREFIX}{{{incident}}}:term:{term}"


def retention_key(kind: str) -> str:
    """Retention policies or legal holds (server/storage/retention.py): a hash of JSON."""
    return f"{PREFIX}retention:{kind}"


def tombstone_key(incident: str) -> str:
    """What stays of an archived incident (EventLog.archive): JSON."""
    return f"{PREFIX}{{{incident}}}:archived"


def term_pattern(incident: str) -> str:
    """A SCAN pattern for every term ZSET of one incident (glob characters escaped)."""
    escaped = "".join("\\" + c if c in "*?[]\\" else c for c in incident)
    return f"{PREFIX}{{{escaped}}}:term:*"


def channel(incident: str) -> str:
    """Pub/sub channel carrying a msgpack array of the events just appended."""
    return f"{PREFIX}{{{incident}}}:ev"


def presence_key(incident: str) -> str:
    """ZSET: "<user>\\0<node>" scored by the expiry time of that node's claim (ms)."""
    return f"{PREFIX}{{{incident}}}:presence"


def probe_channel(node: str) -> str:
    """A node publishes here to itself to prove its subscriber connection is alive."""
    return f"{PREFIX}probe:{node}"


# ------------------------------------------------------------------ sessions
#: Hash of user id -> ms before which that user's access tokens are refused.
VALID_AFTER = PREFIX + "auth:valid_after"
#: ZSET of ended session families scored by when they ended (ms).
ENDED = PREFIX + "auth:ended"
#: Pub/sub channel of msgpack [kind, user, family, ts_ms] revocations.
REVOCATIONS = PREFIX + "auth:revocations"
#: Audit log: a list of msgpack records, and its head "seq hash".
AUDIT_LOG = PREFIX + "audit:log"
AUDIT_HEAD = PREFIX + "audit:head"
#: The anchor log of signed chain heads (server/services/anchors.py): an audit
#: log of its own, same layout.
ANCHOR_LOG = PREFIX + "anchor:log"
ANCHOR_HEAD = PREFIX + "anchor:head"
#: The node signing key's Ed25519 seed (hex), shared by every node.
NODE_KEY = PREFIX + "node-key"


def family_key(family: str) -> str:
    """Hash: user, current (sha256 of the live refresh secret), created, last (ms)."""
    return f"{PREFIX}auth:fam:{family}"


def family_used_key(family: str) -> str:
    """Set: hashes of the family's refresh tokens already rotated away."""
    return f"{PREFIX}auth:fam:{family}:used"


def user_families_key(user: str) -> str:
    """Set: the user's family ids (may name ended ones; they are skipped)."""
    return f"{PREFIX}auth:user:{user}:families"


# ---------------------------------------------------------------- agreements
#: Hash of agreement id -> JSON of its wire form (SPEC section 9.4). Never
#: deleted from: a revoked agreement stays, with ``revoked_ms``/``revoked_by``.
AGREEMENTS = PREFIX + "agreements"
#: Counter bumped by every agreement write: the nodes' cheap change token.
AGREEMENTS_VERSION = PREFIX + "agreements:version"
#: Pub/sub channel: the new version after each write (a wake-up, not the data).
AGREEMENTS_CHANGED = PREFIX + "agreements:changed"

# ------------------------------------------------------------------ API keys
#: Every API key key shares the hash tag ``{apikeys}``: one Cluster slot, so
#: the create and revoke scripts touch a single slot.
#: Set of every key id.
API_KEY_IDS = PREFIX + "{apikeys}:ids"
#: ZSET of key id -> last use (ms), written with ZADD GT (only forward).
API_KEY_LAST_USED = PREFIX + "{apikeys}:last_used"


def api_key_key(key_id: str) -> str:
    """Hash: ``record`` (msgpack of the immutable fields), ``revoked`` (ms, once revoked)."""
    return f"{PREFIX}{{apikeys}}:key:{key_id}"


# ------------------------------------------------------------------ webhooks
#: Hash of subscription id -> JSON of the subscription (with its state).
WEBHOOKS = PREFIX + "webhooks"


def webhook_cursors_key(sub_id: str) -> str:
    """Hash: incident id -> the last seq the subscription handled there."""
    return f"{PREFIX}webhook:{sub_id}:cursors"


def webhook_deliveries_key(sub_id: str) -> str:
    """List: the subscription's delivery log, newest first (LPUSH, LTRIM)."""
    return f"{PREFIX}webhook:{sub_id}:deliveries"


def webhook_lease_key(sub_id: str) -> str:
    """String with a TTL: the node that delivers for the subscription."""
    return f"{PREFIX}webhook:{sub_id}:lease"


def lease_key(name: str) -> str:
    """String with a TTL: the node that runs a background job (``deadlines``)."""
    return f"{PREFIX}lease:{name}"


#: Web Push (storage/redis_push.py): subscriptions by endpoint (hash of JSON
#: records), each user's endpoints (a set per user), the users' feed cursors
#: (hash), and the deployment's VAPID key (generated by the first node).
PUSH_SUBS = PREFIX + "push:subs"
PUSH_CURSORS = PREFIX + "push:cursors"
PUSH_VAPID = PREFIX + "push:vapid"


#: Set: the users with at least one push subscription.
PUSH_USERS = PREFIX + "push:users"
#: Before a user id: the set of that user's endpoints (the Lua scripts build
#: the key of a previous owner from it: the feed needs one primary anyway).
PUSH_USER_PREFIX = PREFIX + "push:user:"


def push_user_key(user: str) -> str:
    """The endpoints of one user's push subscriptions."""
    return PUSH_USER_PREFIX + user


# Capacity board (redis_capacity.py): one hash slot ``{capacity}`` for all of
# it, since one script writes the log, the counters and the current items.
CAPACITY_LOG = PREFIX + "{capacity}:log"
CAPACITY_POS = PREFIX + "{capacity}:pos"
CAPACITY_SEQS = PREFIX + "{capacity}:seqs"
CAPACITY_IDS = PREFIX + "{capacity}:ids"
CAPACITY_ORGS = PREFIX + "{capacity}:orgs"


def capacity_current_key(org: str) -> str:
    """Hash item -> ``<seq> <ts> <msgpack value>`` of one organisation's current items."""
    return PREFIX + "{capacity}:current:" + org
