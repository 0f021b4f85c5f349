"""The report and the replay agree: the server's state at T is the replay's.

At every seq of the recorded joint incident (tests/fixtures/timeline-joint.json),
for each organisation, ``server.domain.as_of.view_as_of`` (what
``GET /api/v1/incidents/{id}/view?at_seq=`` serves, and what a report of the
incident at T uses) equals the web client's replay fold of the envelopes
that organisation received up to that seq (``client_web/src/projection.js``,
run by node once for every prefix), in the differential's common shape.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from server.domain.as_of import view_as_of
from server.domain.audience import Reader
from server.domain.incident import IncidentState
from tests.timeline_script import ORGS
from tests.timeline_shape import shape_of_view
from tests.unit.test_timeline_differential import (
    NOW_MS,
    SHAPE_JS,
    Fixture,
    merged_log,
    recorded,  # noqa: F401 - the fixture
)
from tests.views import demo_rules


def client_prefix_shapes(data: Fixture) -> dict[str, list[Any]]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (the client's tests need it too)")
    script = (
        f"import {{ fold, shapeOfState }} from {json.dumps(SHAPE_JS.as_uri())};\n"
        "let input = ''; process.stdin.on('data', (d) => (input += d));\n"
        "process.stdin.on('end', () => {\n"
        "  const { incident, orgs } = JSON.parse(input); const out = {};\n"
        "  for (const [org, envs] of Object.entries(orgs))\n"
        "    out[org] = envs.map((_, n) => shapeOfState(fold(incident, envs.slice(0, n + 1))));\n"
        "  process.stdout.write(JSON.stringify(out));\n"
        "});\n"
    )
    payload = {
        "incident": data["incident"],
        "orgs": {org: data["orgs"][org]["envelopes"] for org in ORGS},
    }
    done = subprocess.run(
        [node, "--input-type=module", "-e", script],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    shapes: dict[str, list[Any]] = json.loads(done.stdout)
    return shapes


def test_the_view_as_of_every_seq_is_the_replay_at_that_seq(recorded: Fixture) -> None:  # noqa: F811
    events = merged_log(recorded)
    current = IncidentState(id=recorded["incident"], epoch=events[0].epoch)
    for ev in events:
        current.apply(ev)
    client = client_prefix_shapes(recorded)
    for org in ORGS:
        for seq in range(1, len(events) + 1):
            view = view_as_of(current, events, Reader(org, ""), demo_rules(), NOW_MS, seq=seq)
            assert view.pop("as_of")["seq"] == seq
            assert shape_of_view(view) == client[org][seq - 1], f"{org} at seq {seq}"


def test_a_time_resolves_to_the_last_event_the_reader_sees(recorded: Fixture) -> None:  # noqa: F811
    """Asked for a moment, the server names a seq the reader sees, never a placeholder's."""
    events = merged_log(recorded)
    current = IncidentState(id=recorded["incident"], epoch=events[0].epoch)
    for ev in events:
        current.apply(ev)
    for org in ORGS:
        seen = {e["seq"] for e in recorded["orgs"][org]["envelopes"] if e["type"] != "restricted"}
        for ev in events:
            view = view_as_of(
                current, events, Reader(org, ""), demo_rules(), NOW_MS, at_ms=ev.ts_ms
            )
            assert view["as_of"]["seq"] in seen
            assert view["as_of"]["ts"] <= ev.ts_ms
