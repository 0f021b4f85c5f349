"""Bots looking things up over REST: external references, the filtered timeline, text search.

On the shared server, with the demo's police and shelter users: what each
organisation gets is what the audience rules give it, restricted content
never shapes an answer, and bad parameters get typed errors (fuzzed).
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liaison_client import CommandFailed, LiaisonClient
from tests.conftest import LiaisonServer, connect

POLICE = ["metro-police"]


def word() -> str:
    """A word no other test wrote: the shared server keeps every test's events."""
    return "w" + uuid.uuid4().hex[:12]


async def get(client: LiaisonClient, path: str) -> tuple[int, Any]:
    http = await client._session()
    async with http.get(
        client.base_url + path, headers={"Authorization": f"Bearer {client.token}"}
    ) as r:
        return r.status, await r.json()


@pytest.fixture
async def pair(
    server: LiaisonServer, clients: list[LiaisonClient]
) -> tuple[LiaisonClient, LiaisonClient, str]:
    """A dispatcher (police), a shelter responder, and an incident both take part in."""
    dispatch = await connect(clients, server, "dispatch", live=False)
    outreach = await connect(clients, server, "outreach", live=False)
    ack = await dispatch.request(
        "POST",
        "/api/v1/incidents",
        {
            "id": "c-" + uuid.uuid4().hex,
            "title": "Search test",
            "category": "welfare",
            "orgs": ["metro-police", "harbour-shelter"],
        },
    )
    return dispatch, outreach, ack["incident"]


async def post(client: LiaisonClient, incident: str, text: str, **fields: Any) -> int:
    ack = await client.request(
        "POST",
        "/api/v1/commands",
        {
            "type": "message.post",
            "id": uuid.uuid4().hex,
            "incident": incident,
            "text": text,
            **fields,
        },
    )
    return int(ack["seq"])


# ----------------------------------------------------------- external reference


async def test_an_external_ref_is_set_shown_changed_and_found(
    pair: tuple[LiaisonClient, LiaisonClient, str],
) -> None:
    dispatch, outreach, incident = pair
    ref = "CAD-" + uuid.uuid4().hex[:10].upper()
    await dispatch.request(
        "POST",
        "/api/v1/commands",
        {
            "type": "incident.update",
            "id": uuid.uuid4().hex,
            "incident": incident,
            "external_ref": ref,
        },
    )
    assert (await outreach.incident(incident))["external_ref"] == ref
    for client in (dispatch, outreach):
        assert [i["id"] for i in await client.by_ref(ref)] == [incident]
        assert await client.by_ref(ref.lower()) == []  # exact
    created = await dispatch.request(
        "POST",
        "/api/v1/incidents",
        {"id": uuid.uuid4().hex, "title": "Police only", "category": "c", "external_ref": ref},
    )
    police = {i["id"] for i in await dispatch.by_ref(ref)}
    assert police == {incident, created["incident"]}
    assert [i["id"] for i in await outreach.by_ref(ref)] == [incident]  # not a participant


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "empty"),
        ("x" * 65, "too_long"),
        ("CAD 1", "charset"),
        ("-1", "charset"),
        (7, "not_string"),
    ],
)
async def test_a_bad_external_ref_is_refused_with_a_stable_reason(
    pair: tuple[LiaisonClient, LiaisonClient, str], value: Any, reason: str
) -> None:
    dispatch, _, incident = pair
    with pytest.raises(CommandFailed) as refused:
        await dispatch.request(
            "POST",
            "/api/v1/commands",
            {
                "type": "incident.update",
                "id": uuid.uuid4().hex,
                "incident": incident,
                "external_ref": value,
            },
        )
    assert refused.value.code == "invalid"
    assert refused.value.error.get("detail") == {"field": "external_ref", "reason": reason}
    if isinstance(value, str):
        status, body = await get(dispatch, "/api/v1/incidents?ref=" + quote(value, safe=""))
        assert status == 400, body
        assert body["error"]["detail"] == {"field": "ref", "reason": reason}


# ------------------------------------------------------------ filtered timeline


async def test_a_filtered_timeline_has_what_the_reader_sees_and_says_how_far_it_looked(
    pair: tuple[LiaisonClient, LiaisonClient, str],
) -> None:
    dispatch, outreach, incident = pair
    public = await post(dispatch, incident, "public one")
    secret = await post(dispatch, incident, "police only", visibility=POLICE)
    task = await dispatch.request(
        "POST",
        "/api/v1/commands",
        {"type": "task.create", "id": uuid.uuid4().hex, "incident": incident, "title": "Check in"},
    )
    head = int(task["seq"])
    path = f"/api/v1/incidents/{incident}/timeline?types=message.posted"
    _, police = await get(dispatch, path)
    assert [e["seq"] for e in police["events"]] == [public, secret]
    _, shelter = await get(outreach, path)
    assert [e["seq"] for e in shelter["events"]] == [public]  # no placeholder, no type
    assert shelter["scanned_to_seq"] == head
    assert shelter["next_after_seq"] is None
    assert shelter["head_seq"] == head
    _, fam = await get(
        outreach, f"/api/v1/incidents/{incident}/timeline?types=task.*,incident.created"
    )
    assert [e["type"] for e in fam["events"]] == ["incident.created", "task.created"]
    since = police["events"][0]["ts"]
    _, later = await get(dispatch, f"/api/v1/incidents/{incident}/timeline?since={since}")
    assert all(e["ts"] > since for e in later["events"])
    assert later["events"][-1]["seq"] == head
    # Paging: limit 1, then after the scanned position.
    _, first = await get(
        outreach, f"/api/v1/incidents/{incident}/timeline?types=message.*,task.*&limit=1"
    )
    assert [e["seq"] for e in first["events"]] == [public]
    assert first["next_after_seq"] == public
    _, rest = await get(
        outreach, f"/api/v1/incidents/{incident}/timeline?types=message.*,task.*&after_seq={public}"
    )
    assert [e["seq"] for e in rest["events"]] == [head]
    # The python client follows the pages.
    assert [e["seq"] for e in await outreach.timeline(incident, types=["message.*"])] == [public]


@pytest.mark.parametrize(
    ("query", "field", "reason"),
    [
        ("types=", "types", "count"),
        ("types=message.post", "types", "unknown_type"),
        ("types=restricted", "types", "unknown_type"),
        ("types=nope.*", "types", "unknown_type"),
        ("since=-1", "since", "not_integer"),
        ("since=1e3", "since", "not_integer"),
    ],
)
async def test_bad_timeline_filters_are_refused(
    pair: tuple[LiaisonClient, LiaisonClient, str], query: str, field: str, reason: str
) -> None:
    dispatch, _, incident = pair
    status, body = await get(dispatch, f"/api/v1/incidents/{incident}/timeline?{query}")
    assert status == 400
    assert body["error"]["detail"] == {"field": field, "reason": reason}


# --------------------------------------------------------------------- search


async def test_search_finds_what_the_reader_may_see_and_nothing_else(
    pair: tuple[LiaisonClient, LiaisonClient, str],
) -> None:
    dispatch, outreach, incident = pair
    w = word()
    public = await post(dispatch, incident, f"Meet at the {w} gate, then the ramp")
    secret = await post(dispatch, incident, f"Suspect near {w} gate", visibility=POLICE)
    red = await post(dispatch, incident, f"{w} named for one", tlp="RED", recipients=["u_outreach"])
    police = await dispatch.search(w)
    assert [(h["incident"], h["seq"]) for h in police] == [
        (incident, red),
        (incident, secret),
        (incident, public),
    ]
    shelter = await outreach.search(w)
    assert [h["seq"] for h in shelter] == [red, public]
    assert shelter[1]["snippet"] == f"Meet at the {w} gate, then the ramp"
    assert shelter[1]["event"]["body"]["text"] == shelter[1]["snippet"]
    assert [h["seq"] for h in await outreach.search(f"{w} suspect")] == []
    assert [h["seq"] for h in await dispatch.search(f"suspect {w.upper()}")] == [secret]
    # Scoped, and paged one hit at a time.
    assert [h["seq"] for h in await outreach.search(w, incident=incident, limit=1)] == [red, public]
    assert [h["seq"] for h in await dispatch.search(w, limit=1)] == [red, secret, public]


async def test_search_refuses_bad_queries_and_unknown_incidents(
    pair: tuple[LiaisonClient, LiaisonClient, str],
) -> None:
    dispatch, _, incident = pair
    for query, reason in [
        ("", "missing"),
        ("q=", "no_words"),
        ("q=%22%2A%28", "no_words"),
        ("q=" + "a" * 201, "too_long"),
        ("q=" + "+".join("abcdefghi"), "too_many_words"),
    ]:
        status, body = await get(dispatch, "/api/v1/search?" + query)
        assert (status, body["error"]["detail"]["reason"]) == (400, reason), query
    status, body = await get(dispatch, "/api/v1/search?q=x&incident=inc_nope")
    assert (status, body["error"]["code"]) == (404, "not_found")
    status, body = await get(dispatch, f"/api/v1/search?q=x&incident={incident}&cursor=e30")
    assert (status, body["error"]["detail"]["reason"]) == (400, "bad_cursor")
    status, body = await get(dispatch, "/api/v1/search?q=x&limit=0")
    assert (status, body["error"]["detail"]["reason"]) == (400, "out_of_range")


FUZZ = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(
    q=st.text(max_size=40)
    | st.sampled_from(['"', "a OR b", "NEAR(a b)", "a*", "^a", "-", "a:b", "\x00"]),
    key=st.sampled_from(["q", "cursor", "limit", "incident", "types", "since"]),
)
async def test_fuzzed_search_and_filter_parameters_get_typed_answers(
    pair: tuple[LiaisonClient, LiaisonClient, str], q: str, key: str
) -> None:
    dispatch, _, incident = pair
    http = await dispatch._session()
    auth = {"Authorization": f"Bearer {dispatch.token}"}
    if key in ("types", "since"):
        url, params = f"{dispatch.base_url}/api/v1/incidents/{incident}/timeline", {key: q}
    else:
        url, params = f"{dispatch.base_url}/api/v1/search", {"q": "gate", key: q}
    async with http.get(url, params=params, headers=auth) as resp:
        assert resp.status in (200, 400, 404), await resp.text()
        body = await resp.json()
        if resp.status != 200:
            assert body["error"]["code"] in ("invalid", "not_found")
