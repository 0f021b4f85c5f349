"""Exercise mode on a real server (SPEC 28): a drill never reaches a live counterpart.

Two receivers of one organisation: one subscribed with the default (live
incidents only), one that opted in to exercises (``modes``). An exercise's
events reach the second and never the first; a live incident's reach both.
On the same server: a CAD number stays within its mode, KPIs leave the drill
out, and a post written offline keeps its written-at.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from liaison_client import CommandFailed, LiaisonClient, is_exercise, written_note
from tests.conftest import LiaisonServer, connect
from tests.integration.ref_race import one_of_each_pair_is_stored
from tests.integration.test_webhooks import FAST, POLICE, SHELTER, org_admin, subscribe
from tests.integration.webhook_endpoint import Endpoint
from tests.waiting import until


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiaisonServer]:
    srv = LiaisonServer(tmp_path_factory.mktemp("exercise"), env=FAST)
    srv.start()
    yield srv
    srv.stop()
    assert srv.errors_logged() == []


async def test_an_exercise_reaches_only_a_receiver_that_opted_in(
    server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    live_only, opted_in = Endpoint(), Endpoint()
    await live_only.start()
    await opted_in.start()
    try:
        admin = await org_admin(clients, server, SHELTER)
        default = await subscribe(admin, live_only)
        assert default["filters"]["modes"] == ["actual"]
        both = await subscribe(admin, opted_in, modes=["actual", "exercise"])
        assert both["filters"]["modes"] == ["actual", "exercise"]
        with pytest.raises(CommandFailed) as refused:
            await admin.request(
                "POST", "/api/v1/webhooks", {"url": live_only.url, "modes": ["live"]}
            )
        assert refused.value.code == "invalid"

        dispatcher = await connect(clients, server, "dispatch")
        began = int(time.time() * 1000)  # after the demo's own incidents
        orgs: dict[str, Any] = {"orgs": [POLICE, SHELTER]}
        drill = await dispatcher.open_incident(
            "Drill: flooded underpass", "welfare", mode="exercise", external_ref="EX-7", **orgs
        )
        written = int(time.time() * 1000) - 20 * 60_000
        await dispatcher.post(drill, "Exercise inject 1", written_at=written)
        live = await dispatcher.open_incident("Person on the bridge", "welfare", **orgs)
        await dispatcher.post(live, "Shelter: one adult tonight?")

        await until(
            lambda: len(opted_in.events(drill)) == 2, 10, "the drill at the opted-in receiver"
        )
        await until(lambda: len(opted_in.events(live)) == 2, 10, "the live incident there")
        await until(
            lambda: len(live_only.events(live)) == 2, 10, "the live incident at the live-only"
        )
        # The live-only receiver was handed the later live incident, never the drill.
        assert live_only.events(drill) == []
        created, inject = opted_in.events(drill)
        assert created["body"]["mode"] == inject["body"]["mode"] == "exercise"
        assert is_exercise(inject)
        assert inject["body"]["written_at"] == written
        assert written_note(inject) is not None
        assert not any(is_exercise(e) for e in live_only.events(live))

        # The drill's CAD number is never linked to a live incident.
        with pytest.raises(CommandFailed) as conflict:
            await dispatcher.send(
                {"type": "incident.update", "incident": live, "external_ref": "EX-7"}
            )
        assert conflict.value.code == "conflict"
        assert conflict.value.error["detail"]["reason"] == "mode"
        with pytest.raises(CommandFailed) as immutable:
            await dispatcher.send({"type": "incident.update", "incident": drill, "mode": "actual"})
        assert immutable.value.error["detail"]["field"] == "mode"

        listed = await dispatcher.incidents()
        modes = {s["id"]: s["mode"] for s in listed}
        assert (modes[drill], modes[live]) == ("exercise", "actual")

        supervisor = await connect(clients, server, "sergeant", live=False)
        now = int(time.time() * 1000)
        figures = await supervisor.kpis(began, now + 1)
        assert figures["incidents"] == 1
        assert figures["exercises_excluded"] == 1
        assert "exercises" not in figures
        apart = await supervisor.kpis(began, now + 1, include_exercises=True)
        assert apart["exercises"]["incidents"] == 1
    finally:
        await live_only.stop()
        await opted_in.stop()


async def test_adding_an_org_never_puts_a_drill_under_its_live_cad_number(
    server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    dispatcher = await connect(clients, server, "dispatch")
    lead = await connect(clients, server, "shelter-lead")
    ref = f"CAD-{time.time_ns()}"
    live = await dispatcher.open_incident("Person on the bridge", "welfare", external_ref=ref)
    # The shelter cannot see the police's incident: its drill may carry the number.
    drill = await lead.open_incident(
        "Drill: bridge", "welfare", mode="exercise", external_ref=ref, orgs=[SHELTER]
    )
    assert [s["id"] for s in await dispatcher.incidents(f"ref={ref}")] == [live]
    # Adding the police is accepted: refusing it would tell the shelter that
    # the police has an incident under that number (SPEC 18.3).
    await lead.send({"type": "incident.update", "incident": drill, "add_orgs": [POLICE]})
    # The police's CAD lookup (what a CAD bot takes the first hit of) still
    # finds only its live incident; the drill only when asked for by mode.
    assert [s["id"] for s in await dispatcher.incidents(f"ref={ref}")] == [live]
    assert [s["id"] for s in await dispatcher.incidents(f"ref={ref}&mode=actual")] == [live]
    assert [s["id"] for s in await dispatcher.incidents(f"ref={ref}&mode=exercise")] == [drill]
    assert {s["id"] for s in await dispatcher.incidents("limit=1000")} >= {live, drill}
    assert drill not in {s["id"] for s in await dispatcher.incidents("mode=actual&limit=1000")}
    with pytest.raises(CommandFailed) as refused:
        await dispatcher.incidents(f"ref={ref}&mode=drill")
    assert refused.value.code == "invalid"


async def test_a_live_incident_and_a_drill_created_at_once_never_share_a_reference(
    server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    """Both creations checked the reference before either was stored, and both
    were accepted; now the second to be checked sees the first (one node)."""
    live_desk = await connect(clients, server, "dispatch")
    drill_desk = await connect(clients, server, "dispatch")
    await one_of_each_pair_is_stored(live_desk, drill_desk)
