"""The report (HTML, PDF) and CSV of an export, from envelopes as a reader gets them.

Hostile text in every field the report shows must come out escaped; the
review section renders the ``review.submit``/``review.action_done`` events the
reader may see; a placeholder contributes nothing but its row.
"""

from __future__ import annotations

import csv
import io
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from server.domain.model import Principal, Role
from server.services.anchors import NodeSigner, SignedHead
from server.services.export import Exporter, Scope
from server.services.export_formats import csv_row, safe_cell
from server.services.export_report import Digest, html_chunks, pdf_bytes

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'
FORMULA = '=HYPERLINK("http://evil","x")'


def env(
    seq: int, kind: str, body: dict[str, Any], org: str = "metro-police", ts: int = 0
) -> dict[str, Any]:
    return {
        "v": 1,
        "type": kind,
        "incident": "inc_r",
        "seq": seq,
        "epoch": "e",
        "ts": ts or 1_767_225_600_000 + seq * 60_000,
        "actor": {"user": f"u_{org}", "org": org, "name": f"{HOSTILE} of {org}"},
        "cid": f"c{seq}",
        "visibility": None,
        "body": body,
        "digest": "d" * 64,
        "hash": "h" * 64,
    }


ENVELOPES = [
    env(
        1,
        "incident.created",
        {
            "title": HOSTILE,
            "category": "welfare",
            "priority": "high",
            "orgs": ["metro-police", "harbour-shelter"],
            "lead_org": "metro-police",
            "liaisons": {"metro-police": "u_dispatch", "harbour-shelter": HOSTILE},
            "status": "reported",
        },
    ),
    env(2, "message.posted", {"text": FORMULA}),
    {
        "v": 1,
        "type": "restricted",
        "incident": "inc_r",
        "seq": 3,
        "epoch": "e",
        "digest": "d" * 64,
        "hash": "h" * 64,
    },
    env(
        4, "task.created", {"title": HOSTILE, "assignee": {"org": "harbour-shelter", "user": None}}
    ),
    env(5, "task.accepted", {"task": 4, "note": None}, "harbour-shelter"),
    env(
        6,
        "responder.position",
        {"position": {"lat": 51.5, "lon": -0.07, "accuracy_m": 5.0}},
        "harbour-shelter",
    ),
    env(
        7,
        "responder.position",
        {"position": {"lat": 51.51, "lon": -0.06, "accuracy_m": 5.0}},
        "harbour-shelter",
    ),
    env(8, "responder.position", {"position": {"redacted": True}}, "metro-police"),
    env(9, "task.completed", {"task": 4, "note": None}, "harbour-shelter"),
    env(10, "incident.status_changed", {"status": "closed", "previous": "active", "note": HOSTILE}),
    env(
        11,
        "review.submit",
        {
            "org": "harbour-shelter",
            "went_well": HOSTILE,
            "went_badly": "radio gaps",
            "rating": 4,
            "actions": [
                {"id": "a1", "text": HOSTILE, "owner": "u_x", "due": 1_767_312_000.0},
                {"id": "a2", "text": "train", "owner": "u_y", "due": 1_767_312_000.0},
            ],
        },
        "harbour-shelter",
    ),
    env(12, "review.action_done", {"action_id": "a1"}, "harbour-shelter"),
]


class StubExporter(Exporter):
    """The exporter's two streaming calls over a fixed list of envelopes."""

    def __init__(self, envelopes: list[dict[str, Any]]) -> None:
        self.envelopes = envelopes
        self.signer = NodeSigner(b"33" * 32)

    async def pages(self, scope: Scope) -> AsyncIterator[list[dict[str, Any]]]:
        for start in range(0, len(self.envelopes), 5):
            page = self.envelopes[start : start + 5]
            scope.count += len(page)
            yield page

    async def finish(self, scope: Scope) -> SignedHead:
        scope.signed = self.signer.signed_head(scope.incident, scope.epoch, scope.count, "h" * 64)
        return scope.signed


def scope() -> Scope:
    from server.domain.incident import IncidentState

    who = Principal("u_shelter", "harbour-shelter", Role.SUPERVISOR, HOSTILE)
    return Scope(who, IncidentState("inc_r", "e"), "e", len(ENVELOPES))


async def test_the_html_report_escapes_everything_and_has_every_section() -> None:
    page = b"".join([c async for c in html_chunks(StubExporter(ENVELOPES), scope())]).decode()
    assert "<script>" not in page
    assert "<img" not in page
    assert "onerror=alert(1)>" not in page
    assert "&lt;script&gt;" in page
    for section in (
        "Summary",
        "Participants",
        "Tasks",
        "Map of positions",
        "Review",
        "Timeline",
        "Verification",
    ):
        assert f"<h2>{section}</h2>" in page
    assert "<polyline" in page  # two shared positions; the redacted one is left out
    assert page.count("<circle") == 1
    assert "rating 4/5" in page
    assert "radio gaps" in page
    assert "<td>a1</td>" in page
    assert page.index("<td>done</td>") < page.index("<td>a2</td>")
    assert "(restricted entry)" in page
    assert "1 restricted entries" in page

    tasks = page.split("<h2>Tasks</h2>")[1].split("<h2>")[0]
    assert "<td>1m00s</td>" in tasks
    assert "<td>5m00s</td>" in tasks
    assert page.rstrip().endswith("</html>")


async def test_the_pdf_report_is_a_pdf_holding_the_sections(tmp_path: Path) -> None:
    out = io.BytesIO()
    await pdf_bytes(StubExporter(ENVELOPES * 10), scope(), out)
    data = out.getvalue()
    assert data.startswith(b"%PDF-")
    path = tmp_path / "r.pdf"
    path.write_bytes(data)
    text = subprocess.run(
        ["pdftotext", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    for section in ("Summary", "Participants", "Tasks", "Map of positions", "Review", "Timeline"):
        assert section in text
    assert "radio gaps" in text


def test_a_csv_cell_that_a_spreadsheet_would_run_is_escaped() -> None:
    for start in "=+-@\t\r":
        assert safe_cell(start + "1+1") == "'" + start + "1+1"
    assert safe_cell("plain") == "plain"
    row = csv_row(ENVELOPES[1])
    buffer = io.StringIO()
    csv.writer(buffer).writerow(row)
    parsed = next(csv.reader(io.StringIO(buffer.getvalue())))
    assert all(not cell.startswith(("=", "+", "-", "@")) for cell in parsed)
    assert parsed[9] == "'" + FORMULA
    placeholder = csv_row(ENVELOPES[2])
    assert placeholder[3] == "restricted"
    assert placeholder[11] == ""
    assert placeholder[6] == ""


def test_a_track_stays_bounded_however_long() -> None:
    digest = Digest("inc_r")
    for i in range(20_000):
        digest.add(
            env(i + 1, "responder.position", {"position": {"lat": 51 + i * 1e-6, "lon": 0.0}})
        )
    (track,) = digest.tracks.values()
    assert len(track.points) <= 1001
    assert track.seen == 20_000
