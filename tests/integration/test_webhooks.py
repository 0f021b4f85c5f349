"""Outbound webhooks on a real server, to a real receiver (issue 11, item 2).

The receiver is deploy/examples/webhook_receiver.py on a loopback port: it
verifies every signature and keeps each webhook-id once. The server runs with
short poll and retry settings (LIAISON_WEBHOOK_*), so outages of seconds
show every path: retries, back-off, disabling.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from liaison_client import CommandFailed, LiaisonClient
from tests.conftest import ADMIN_PASSWORD, ROOT, LiaisonServer, connect
from tests.integration.test_metrics import scrape
from tests.integration.test_multinode import start_nodes
from tests.integration.webhook_endpoint import Endpoint
from tests.redis_server import RedisServer
from tests.waiting import until, until_true

POLICE, SHELTER = "metro-police", "harbour-shelter"
FAST = {
    "LIAISON_WEBHOOK_POLL_S": "0.1",
    "LIAISON_WEBHOOK_RETRY_BASE_S": "0.1",
    "LIAISON_WEBHOOK_RETRY_CAP_S": "0.4",
}
MARKER = {"redacted": True}
RESTRICTED_KEYS = {"v", "type", "incident", "seq", "epoch", "digest", "hash"}


@pytest.fixture
def webhook_server(tmp_path: Path) -> Iterator[LiaisonServer]:
    srv = LiaisonServer(tmp_path / "data", env=FAST)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def quick_disable_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiaisonServer]:
    """Gives up on a receiver after 1.5 s of failures."""
    srv = LiaisonServer(
        tmp_path_factory.mktemp("webhooks"), env={**FAST, "LIAISON_WEBHOOK_DISABLE_AFTER_S": "1.5"}
    )
    srv.start()
    yield srv
    srv.stop()
    assert srv.errors_logged() == []


def exported_audit(srv: LiaisonServer) -> list[dict[str, Any]]:
    """The deployment's audit log, through ``liaison audit export`` (it checks the chain)."""
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "audit", "export", "--data-dir", str(srv.data_dir)],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=30,
    )
    return [orjson.loads(line) for line in done.stdout.splitlines()]


async def org_admin(opened: list[LiaisonClient], srv: LiaisonServer, org: str) -> LiaisonClient:
    """An admin of ``org`` (created by the deployment admin on first use)."""
    root = await connect(opened, srv, "admin", password=ADMIN_PASSWORD, live=False)
    username = f"{org}-admin"
    with contextlib.suppress(CommandFailed):  # made by an earlier test
        await root.request(
            "POST",
            "/api/v1/users",
            {
                "username": username,
                "org": org,
                "name": f"Admin of {org}",
                "role": "admin",
                "password": ADMIN_PASSWORD,
            },
        )
    return await connect(opened, srv, username, password=ADMIN_PASSWORD, live=False)


async def subscribe(admin: LiaisonClient, endpoint: Endpoint, **filters: Any) -> dict[str, Any]:
    created: dict[str, Any] = await admin.request(
        "POST", "/api/v1/webhooks", {"url": endpoint.url, **filters}
    )
    assert created["secret"].startswith("whsec_")
    endpoint.receiver.secrets.append(created["secret"])
    return created


async def crime_incident(dispatcher: LiaisonClient) -> str:
    """No demo agreement covers "crime": the subject is redacted for the shelter."""
    ack = await dispatcher.send(
        {
            "type": "incident.create",
            "title": "Missing person",
            "category": "crime",
            "orgs": [POLICE, SHELTER],
            "subject": {"name": "A. Person", "dob": "1980-02-29", "phone": "+44 7700 900123"},
        }
    )
    incident: str = ack["incident"]
    return incident


async def test_an_ngo_receiver_gets_every_event_once_in_order_across_outages_and_a_kill(
    webhook_server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    endpoint = Endpoint()
    await endpoint.start()
    try:
        admin = await org_admin(clients, webhook_server, SHELTER)
        sub = await subscribe(admin, endpoint)
        dispatcher = await connect(clients, webhook_server, "dispatch")
        incident = await crime_incident(dispatcher)
        await dispatcher.post(incident, "Shelter: can you take one adult tonight?")
        await dispatcher.post(incident, "police only: suspect known", visibility=[POLICE])
        await dispatcher.post(
            incident, "The caller is my informant", tlp="RED", recipients=["u_outreach"]
        )
        await until(lambda: len(endpoint.events(incident)) == 4, 10, "the first four events")
        created, message, police_only, red = endpoint.events(incident)
        assert created["type"] == "incident.created"
        assert created["body"]["subject"]["name"] == MARKER
        assert created["body"]["subject"]["dob"] == MARKER
        assert created["redacted"] == ["dob", "name", "phone"]
        assert "salt" not in created
        assert message["body"]["text"] == "Shelter: can you take one adult tonight?"
        for placeholder in (police_only, red):
            assert placeholder["type"] == "restricted"
            assert set(placeholder) == RESTRICTED_KEYS
        raw = orjson.dumps(endpoint.events())
        for secret in (
            b"suspect known",
            b"informant",
            b"A. Person",
            b"1980-02-29",
            b"+44 7700 900123",
        ):
            assert secret not in raw

        # The receiver goes down; events keep coming, in two incidents.
        await endpoint.stop()
        other = await crime_incident(dispatcher)
        for i in range(3):
            await dispatcher.post(incident, f"while down {i}")
            await dispatcher.post(other, f"other while down {i}")

        async def failing() -> bool:
            log = await admin.request("GET", f"/api/v1/webhooks/{sub['id']}/deliveries")
            return any(d["kind"] == "attempt" and d["status"] is None for d in log["deliveries"])

        await until_true(failing, 10, "a failed attempt in the delivery log")
        log = await admin.request("GET", f"/api/v1/webhooks/{sub['id']}/deliveries")
        failed = next(d for d in log["deliveries"] if not d["ok"])
        assert failed["next_retry_ms"] > failed["ts_ms"]
        assert failed["error"]
        assert log["next_retry"] is not None

        # The Liaison server dies with all that undelivered, and comes back.
        webhook_server.kill()
        webhook_server.start()
        dispatcher = await connect(clients, webhook_server, "dispatch")
        await dispatcher.post(incident, "after the restart")
        await dispatcher.post(other, "other after the restart")
        await endpoint.start()
        await until(
            lambda: (
                endpoint.seqs().get(incident, [])[-1:] == [8]
                and endpoint.seqs().get(other, [])[-1:] == [5]
            ),
            15,
            "every event after the outage and the restart",
        )
        assert endpoint.seqs() == {incident: list(range(1, 9)), other: list(range(1, 6))}
        texts = [e["body"].get("text") for e in endpoint.events(incident)[4:]]
        assert texts == ["while down 0", "while down 1", "while down 2", "after the restart"]
        assert endpoint.receiver.refused == 0
        ids = [i for i, _ in endpoint.receiver.events]
        assert ids[0] == f"{sub['id']}_{incident}_1"
    finally:
        await endpoint.stop()


async def test_metrics_show_a_failing_receiver_and_its_recovery(
    webhook_server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    """/metrics: attempts, the failing subscription, the event it holds up, then the lag."""
    idle = await scrape(webhook_server)
    assert idle["liaison_webhook_subscriptions_held"] == 0
    assert idle["liaison_webhook_failing"] == 0
    assert idle["liaison_webhook_blocked_seconds"] == 0
    assert idle["liaison_webhook_lag_seconds_count"] == 0
    endpoint = Endpoint()  # not started: connections are refused
    admin = await org_admin(clients, webhook_server, SHELTER)
    await subscribe(admin, endpoint)
    dispatcher = await connect(clients, webhook_server, "dispatch")
    await crime_incident(dispatcher)

    async def failing() -> bool:
        m = await scrape(webhook_server)
        return (
            m["liaison_webhook_subscriptions_held"] == 1
            and m["liaison_webhook_failing"] == 1
            and m["liaison_webhook_failed_total"] >= 2  # retried
            and m["liaison_webhook_blocked_seconds"] > 0.2
        )

    await until_true(failing, 10, "the failing receiver in /metrics")
    assert (await scrape(webhook_server))["liaison_webhook_delivered_total"] == 0
    await endpoint.start()
    try:

        async def recovered() -> bool:
            m = await scrape(webhook_server)
            return m["liaison_webhook_delivered_total"] == 1 and m["liaison_webhook_failing"] == 0

        await until_true(recovered, 10, "the delivery in /metrics")
        m = await scrape(webhook_server)
        assert m["liaison_webhook_blocked_seconds"] == 0
        assert m["liaison_webhook_lag_seconds_count"] == 1
        assert m["liaison_webhook_lag_seconds_sum"] > 0.2  # it waited out the outage
        assert m["liaison_webhook_disabled_total"] == 0
    finally:
        await endpoint.stop()


async def test_a_slow_receiver_does_not_stall_live_fanout(
    quick_disable_server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    srv = quick_disable_server
    endpoint = Endpoint()
    endpoint.gate.clear()  # every delivery hangs until the gate opens
    await endpoint.start()
    try:
        admin = await org_admin(clients, srv, SHELTER)
        await subscribe(admin, endpoint)
        dispatcher = await connect(clients, srv, "dispatch")
        lead = await connect(clients, srv, "shelter-lead")
        incident = await crime_incident(dispatcher)
        await lead.follow(incident)
        await until(lambda: endpoint.in_flight == 1, 10, "a delivery waiting on the receiver")
        started = time.monotonic()
        for i in range(20):
            await dispatcher.post(incident, f"live {i}")
        await lead.wait_seq(incident, 21, timeout=5)
        live_s = time.monotonic() - started
        print(f"20 posts reached a live reader in {live_s:.3f} s with the receiver stalled")
        assert endpoint.in_flight == 1  # still the first delivery
        assert endpoint.events() == []
        endpoint.gate.set()
        await until(lambda: endpoint.seqs().get(incident) == list(range(1, 22)), 15, "all 21")
    finally:
        endpoint.gate.set()
        await endpoint.stop()


async def test_filters_pick_incidents_and_types(
    quick_disable_server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    srv = quick_disable_server
    endpoint = Endpoint()
    await endpoint.start()
    try:
        admin = await org_admin(clients, srv, SHELTER)
        dispatcher = await connect(clients, srv, "dispatch")
        wanted, unwanted = await crime_incident(dispatcher), await crime_incident(dispatcher)
        await subscribe(admin, endpoint, incidents=[wanted], types=["message.posted"])
        for incident in (wanted, unwanted):
            await dispatcher.post(incident, "police only", visibility=[POLICE])
            await dispatcher.post(incident, "for everyone")
        await until(lambda: len(endpoint.events()) == 1, 10, "the one matching event")
        (only,) = endpoint.events()
        assert (only["incident"], only["seq"], only["body"]["text"]) == (wanted, 3, "for everyone")
        with pytest.raises(CommandFailed) as refused:
            await admin.request(
                "POST", "/api/v1/webhooks", {"url": endpoint.url, "types": ["nonsense"]}
            )
        assert refused.value.code == "invalid"
    finally:
        await endpoint.stop()


async def test_a_receiver_down_too_long_is_disabled_then_replayed(
    quick_disable_server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    srv = quick_disable_server
    disabled_before = (await scrape(srv))["liaison_webhook_disabled_total"]
    endpoint = Endpoint()  # not started: connections are refused
    admin = await org_admin(clients, srv, SHELTER)
    sub = await subscribe(admin, endpoint)
    dispatcher = await connect(clients, srv, "dispatch")
    incident = await crime_incident(dispatcher)
    await dispatcher.post(incident, "one")

    async def disabled() -> bool:
        return not (await admin.request("GET", f"/api/v1/webhooks/{sub['id']}"))["enabled"]

    await until_true(disabled, 15, "the failing subscription disabled")
    # At least: the module's other subscriptions may give up on this server too.
    assert (await scrape(srv))["liaison_webhook_disabled_total"] >= disabled_before + 1
    log = (await admin.request("GET", f"/api/v1/webhooks/{sub['id']}/deliveries"))["deliveries"]
    assert log[0]["kind"] == "notice"
    assert log[0]["error"].startswith("disabled")
    # Replay: the receiver is back; everything from seq 1 arrives.
    await endpoint.start()
    try:
        replayed = await admin.request(
            "POST", f"/api/v1/webhooks/{sub['id']}/replay", {"incident": incident, "from_seq": 1}
        )
        assert replayed["enabled"]
        await until(lambda: endpoint.seqs().get(incident) == [1, 2], 10, "the replayed events")
        # Another organisation's admin sees none of it.
        police = await org_admin(clients, srv, POLICE)
        with pytest.raises(CommandFailed) as refused:
            await police.request("GET", f"/api/v1/webhooks/{sub['id']}/deliveries")
        assert refused.value.code == "not_found"
        assert all(
            w["id"] != sub["id"]
            for w in (await police.request("GET", "/api/v1/webhooks"))["webhooks"]
        )
        deleted = await admin.request("DELETE", f"/api/v1/webhooks/{sub['id']}")
        assert deleted == {"id": sub["id"], "deleted": True}
    finally:
        await endpoint.stop()
    audit = exported_audit(srv)
    actions = [r["action"] for r in audit if r["target"] == sub["id"]]
    assert actions == ["webhook.create", "webhook.disable", "webhook.replay", "webhook.delete"]


async def test_during_a_rotation_both_secrets_sign(
    quick_disable_server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    srv = quick_disable_server
    old_only = Endpoint()
    await old_only.start()
    try:
        admin = await org_admin(clients, srv, SHELTER)
        sub = await subscribe(admin, old_only)
        rotated = await admin.request(
            "POST", f"/api/v1/webhooks/{sub['id']}/rotate", {"window_s": 3600}
        )
        assert rotated["secret"] != sub["secret"]
        assert len(rotated["secrets"]) == 2
        assert rotated["secrets"][1]["expires"] is not None
        dispatcher = await connect(clients, srv, "dispatch")
        incident = await crime_incident(dispatcher)
        await until(lambda: len(old_only.events(incident)) == 1, 10, "signed by the old secret")
        # The receiver switches to the new secret alone: deliveries still verify.
        old_only.receiver.secrets[:] = [rotated["secret"]]
        await dispatcher.post(incident, "after the switch")
        await until(lambda: len(old_only.events(incident)) == 2, 10, "signed by the new secret")
        assert old_only.receiver.refused == 0
    finally:
        await old_only.stop()


async def test_one_node_delivers_and_another_takes_over_when_it_dies(
    own_redis: RedisServer, tmp_path: Path, clients: list[LiaisonClient]
) -> None:
    nodes = start_nodes(own_redis, tmp_path, 2, env={**FAST, "LIAISON_WEBHOOK_LEASE_S": "1.5"})
    endpoint = Endpoint()
    await endpoint.start()
    lease = redis.Redis.from_url(own_redis.url)
    try:
        admin = await org_admin(clients, nodes[0], SHELTER)
        sub = await subscribe(admin, endpoint)
        dispatcher = await connect(clients, nodes[0], "dispatch")
        incident = await crime_incident(dispatcher)
        for i in range(5):
            await dispatcher.post(incident, f"before {i}")
        await until(lambda: endpoint.seqs().get(incident, [])[-1:] == [6], 10, "six events")
        holder = lease.get(f"liaison:webhook:{sub['id']}:lease")
        assert holder in (b"node0", b"node1")
        dying = 0 if holder == b"node0" else 1
        survivor = nodes[1 - dying]
        assert endpoint.receiver.duplicates == 0  # one node delivered, not both
        nodes[dying].kill()
        writer = await connect(clients, survivor, "dispatch")
        for i in range(5):
            await writer.post(incident, f"after {i}")
        await until(
            lambda: endpoint.seqs().get(incident, [])[-1:] == [11], 15, "delivery taken over"
        )
        assert endpoint.seqs()[incident] == list(range(1, 12))
        assert lease.get(f"liaison:webhook:{sub['id']}:lease") == f"node{1 - dying}".encode()
    finally:
        lease.close()
        await endpoint.stop()
        for node in nodes:
            node.stop()


def liaison_cli(srv: LiaisonServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args, "--data-dir", str(srv.data_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


async def test_the_cli_adds_lists_and_removes_a_subscription_a_running_server_uses(
    quick_disable_server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    srv = quick_disable_server
    endpoint = Endpoint()
    await endpoint.start()
    try:
        added = liaison_cli(
            srv, "webhook", "add", endpoint.url, "--org", SHELTER, "--types", "incident.created"
        )
        assert added.returncode == 0, added.stderr
        sub_id, secret = added.stdout.split()
        endpoint.receiver.secrets.append(secret)
        dispatcher = await connect(clients, srv, "dispatch")
        incident = await crime_incident(dispatcher)
        await until(lambda: endpoint.seqs().get(incident) == [1], 10, "the CLI's subscription")
        listed = liaison_cli(srv, "webhook", "list", "--org", SHELTER)
        line = next(x for x in listed.stdout.splitlines() if x.startswith(sub_id))
        assert f"\t{SHELTER}\tenabled\t{endpoint.url}\t" in line
        assert "types=incident.created" in line
        assert liaison_cli(srv, "webhook", "remove", sub_id).returncode == 0
        assert sub_id not in liaison_cli(srv, "webhook", "list").stdout
        unknown = liaison_cli(srv, "webhook", "add", endpoint.url, "--org", "no-such-org")
        assert unknown.returncode == 1
        assert "no organisation" in unknown.stderr
    finally:
        await endpoint.stop()
    actions = [(r["action"], r["actor"][:4]) for r in exported_audit(srv) if r["target"] == sub_id]
    assert actions == [("webhook.create", "cli:"), ("webhook.delete", "cli:")]


async def test_bad_webhook_requests_get_typed_refusals(
    quick_disable_server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    srv = quick_disable_server
    admin = await org_admin(clients, srv, SHELTER)
    endpoint = Endpoint()
    sub = await subscribe(admin, endpoint)
    path = f"/api/v1/webhooks/{sub['id']}"
    cases: list[tuple[str, str, Any, str]] = [
        ("POST", "/api/v1/webhooks", {"url": "ftp://example.org/"}, "invalid"),
        ("POST", "/api/v1/webhooks", {"url": "http:///nohost"}, "invalid"),
        ("POST", "/api/v1/webhooks", {"url": endpoint.url, "incidents": "some"}, "invalid"),
        ("POST", "/api/v1/webhooks", {"url": endpoint.url, "categories": [1]}, "invalid"),
        ("POST", "/api/v1/webhooks", [1, 2], "invalid"),
        ("POST", path + "/rotate", {"window_s": "soon"}, "invalid"),
        ("POST", path + "/rotate", {"window_s": -1}, "invalid"),
        ("POST", path + "/replay", {"incident": "x", "from_seq": "1"}, "invalid"),
        ("POST", path + "/replay", {"incident": "x", "from_seq": 0}, "invalid"),
        ("POST", path + "/replay", {"from_seq": 1}, "invalid"),
        ("GET", path + "/deliveries?limit=lots", None, "invalid"),
        ("GET", "/api/v1/webhooks/wh_nope", None, "not_found"),
        ("DELETE", "/api/v1/webhooks/wh_nope", None, "not_found"),
    ]
    for method, where, body, code in cases:
        with pytest.raises(CommandFailed) as refused:
            await admin.request(method, where, body)
        assert refused.value.code == code, (method, where, body)
    lead = await connect(clients, srv, "shelter-lead", live=False)  # not an admin
    with pytest.raises(CommandFailed) as refused:
        await lead.request("GET", "/api/v1/webhooks")
    assert refused.value.code == "forbidden"
    http = await admin._session()
    headers = {"Authorization": f"Bearer {admin.token}"}
    async with http.post(srv.url + "/api/v1/webhooks", data=b"{nope", headers=headers) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == "malformed"
    assert (await admin.request("DELETE", path))["deleted"]


async def test_a_kill_during_a_delivery_sends_it_again_and_the_receiver_drops_the_copy(
    webhook_server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    endpoint = Endpoint()
    endpoint.gate.clear()
    await endpoint.start()
    try:
        admin = await org_admin(clients, webhook_server, SHELTER)
        await subscribe(admin, endpoint)
        dispatcher = await connect(clients, webhook_server, "dispatch")
        incident = await crime_incident(dispatcher)
        for i in range(3):
            await dispatcher.post(incident, f"message {i}")
        await until(lambda: endpoint.in_flight == 1, 10, "the first delivery in flight")
        webhook_server.kill()  # it never hears the answer
        endpoint.gate.set()
        await until(lambda: endpoint.in_flight == 0, 10, "the receiver done with it")
        assert endpoint.seqs() == {incident: [1]}
        webhook_server.start()
        await until(lambda: endpoint.seqs()[incident] == [1, 2, 3, 4], 15, "the rest")
        assert endpoint.receiver.duplicates == 1  # seq 1, sent again, dropped by webhook-id
    finally:
        endpoint.gate.set()
        await endpoint.stop()


async def test_a_backlog_longer_than_a_batch_drains_in_order(
    webhook_server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    endpoint = Endpoint()  # down while the backlog builds
    admin = await org_admin(clients, webhook_server, SHELTER)
    await subscribe(admin, endpoint)
    dispatcher = await connect(clients, webhook_server, "dispatch")
    incident = await crime_incident(dispatcher)
    for i in range(250):
        await dispatcher.post(incident, f"backlog {i}")
    await endpoint.start()
    try:
        started = time.monotonic()
        await until(lambda: len(endpoint.events(incident)) == 251, 60, "the whole backlog")
        drained_s = time.monotonic() - started
        print(f"a backlog of 251 events drained to one receiver in {drained_s:.2f} s")
        assert endpoint.seqs() == {incident: list(range(1, 252))}
    finally:
        await endpoint.stop()
