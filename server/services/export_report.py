"""The printable report of an incident export, in HTML and PDF.

Built only from the envelopes the reader gets (``Exporter.pages``), never
from the projection: what the report says is what the reader's JSONL export
holds, placeholders and redactions included. Two passes over the log: the
first folds the envelopes into a ``Digest`` (summary, tasks, participants,
tracks, reviews; bounded, see ``MAX_TRACK_POINTS``), the second streams the
timeline rows after the sections that need the whole log.

HTML escapes every value from the log (``html.escape``; attributes too). The
PDF is drawn on a reportlab canvas with plain strings (no markup parsing),
page by page; reportlab keeps the finished pages compressed until ``save``.
"""

from __future__ import annotations

import asyncio
import html
import io
import math
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from server.domain.modes import banner
from server.services.export import Exporter, Scope, describe

#: Points kept per responder track: beyond it, every other point is dropped
#: and the stride doubles, so a track's memory stays bounded however long.
MAX_TRACK_POINTS = 1000
#: Tracks drawn on the map (the most recently moving ones beyond that).
MAX_TRACKS = 50
#: Lines a report table cell is cut to in the PDF (the JSONL has it whole).
MAX_CELL_LINES = 12
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b")


def when(ms: Any) -> str:
    if not isinstance(ms, int):
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(start: int | None, end: int | None) -> str:
    if start is None or end is None:
        return ""
    seconds = max(0, (end - start) // 1000)
    hours, rest = divmod(seconds, 3600)
    return (
        f"{hours}h{rest // 60:02d}m{rest % 60:02d}s" if hours else f"{rest // 60}m{rest % 60:02d}s"
    )


@dataclass(slots=True)
class Task:
    title: str
    assignee: str
    created: int | None
    accepted: int | None = None
    done: int | None = None
    state: str = "open"


@dataclass(slots=True)
class Track:
    org: str
    name: str
    points: list[tuple[float, float]] = field(default_factory=list)
    stride: int = 1
    seen: int = 0
    last_ms: int = 0

    def add(self, lat: float, lon: float, ts: int) -> None:
        self.seen += 1
        self.last_ms = ts
        if self.seen % self.stride:
            return
        self.points.append((lat, lon))
        if len(self.points) > MAX_TRACK_POINTS:
            self.points = self.points[::2]
            self.stride *= 2


@dataclass(slots=True)
class Digest:
    """What the report's sections need, folded from the reader's envelopes."""

    incident: str
    title: str = ""
    category: str = ""
    priority: str = ""
    status: str = ""
    lead_org: str = ""
    created: int | None = None
    closed: int | None = None
    last: int | None = None
    events: int = 0
    placeholders: int = 0
    messages: int = 0
    liaisons: dict[str, str] = field(default_factory=dict)
    #: org -> {user id: display name} of everyone who acted.
    people: dict[str, dict[str, str]] = field(default_factory=dict)
    statuses: list[tuple[int, str, str, str]] = field(default_factory=list)
    tasks: dict[int, Task] = field(default_factory=dict)
    tracks: dict[str, Track] = field(default_factory=dict)
    reviews: list[dict[str, Any]] = field(default_factory=list)
    actions_done: set[str] = field(default_factory=set)
    #: ``actual``, ``exercise`` or ``test`` (SPEC 28).
    mode: str = "actual"

    def add(self, env: dict[str, Any]) -> None:
        self.events += 1
        kind = env["type"]
        if kind == "restricted":
            self.placeholders += 1
            return
        ts, body, actor = env["ts"], env.get("body") or {}, env.get("actor") or {}
        self.last = ts
        self.people.setdefault(str(actor.get("org")), {})[str(actor.get("user"))] = str(
            actor.get("name")
        )
        handler = _FOLD.get(kind) or (_task_step if kind.startswith("task.") else None)
        if handler is not None:
            handler(self, env, body, ts)

    def orgs(self) -> list[str]:
        return sorted(set(self.people) | set(self.liaisons))


def _created(d: Digest, env: dict[str, Any], body: dict[str, Any], ts: int) -> None:
    d.title, d.category = str(body.get("title", "")), str(body.get("category", ""))
    d.priority, d.status = str(body.get("priority", "")), str(body.get("status", "reported"))
    d.lead_org, d.created = str(body.get("lead_org") or ""), ts
    d.mode = str(body.get("mode") or "actual")
    d.liaisons.update(body.get("liaisons") or {})
    for org in body.get("orgs") or ():
        d.people.setdefault(str(org), {})


def _updated(d: Digest, env: dict[str, Any], body: dict[str, Any], ts: int) -> None:
    for name in ("title", "category", "priority", "lead_org"):
        if body.get(name) is not None:
            setattr(d, name, str(body[name]))
    d.liaisons.update(body.get("liaisons") or {})
    for org in body.get("add_orgs") or ():
        d.people.setdefault(str(org), {})


def _status(d: Digest, env: dict[str, Any], body: dict[str, Any], ts: int) -> None:
    d.status = str(body.get("status", ""))
    d.statuses.append((ts, str(body.get("previous", "")), d.status, str(body.get("note") or "")))
    d.closed = ts if d.status == "closed" else None


def _message(d: Digest, env: dict[str, Any], body: dict[str, Any], ts: int) -> None:
    d.messages += 1


def _assignee(value: Any) -> str:
    if not isinstance(value, dict):
        return ""
    return "/".join(str(p) for p in (value.get("org"), value.get("user")) if p)


def _task_created(d: Digest, env: dict[str, Any], body: dict[str, Any], ts: int) -> None:
    d.tasks[env["seq"]] = Task(str(body.get("title", "")), _assignee(body.get("assignee")), ts)


def _task_step(d: Digest, env: dict[str, Any], body: dict[str, Any], ts: int) -> None:
    task = d.tasks.get(body.get("task"))  # type: ignore[arg-type]
    if task is None:
        return
    step = env["type"].removeprefix("task.")
    if step == "assigned":
        task.assignee = _assignee(body.get("assignee"))
    elif step == "accepted" and task.accepted is None:
        task.accepted = ts
    elif step in ("completed", "cancelled"):
        task.done = ts
    task.state = step


def _position(d: Digest, env: dict[str, Any], body: dict[str, Any], ts: int) -> None:
    position = body.get("position")
    if not isinstance(position, dict) or "lat" not in position:  # absent, or redacted
        return
    actor = env["actor"]
    track = d.tracks.get(actor["user"])
    if track is None:
        track = d.tracks[actor["user"]] = Track(str(actor["org"]), str(actor["name"]))
    try:
        track.add(float(position["lat"]), float(position["lon"]), ts)
    except (TypeError, ValueError, KeyError):
        return


def _review(d: Digest, env: dict[str, Any], body: dict[str, Any], ts: int) -> None:
    d.reviews.append({**body, "_ts": ts, "_by": env["actor"].get("name")})


def _action_done(d: Digest, env: dict[str, Any], body: dict[str, Any], ts: int) -> None:
    d.actions_done.add(str(body.get("action_id")))


_FOLD = {
    "incident.created": _created,
    "incident.updated": _updated,
    "incident.status_changed": _status,
    "message.posted": _message,
    "task.created": _task_created,
    "responder.status": _position,
    "responder.position": _position,
    "review.submit": _review,
    "review.action_done": _action_done,
}


async def digest_of(exporter: Exporter, scope: Scope) -> Digest:
    """The first pass: fold every envelope the reader gets; then rewind the scope."""
    digest = Digest(scope.incident)
    async for page in exporter.pages(scope):
        for env in page:
            digest.add(env)
    scope.count = scope.restricted_seen = scope.placeholders = 0
    return digest


# ------------------------------------------------------------------ the map


def _tracks(d: Digest) -> list[Track]:
    tracks = sorted(d.tracks.values(), key=lambda t: t.last_ms, reverse=True)[:MAX_TRACKS]
    return [t for t in tracks if t.points]


def projected(
    d: Digest, width: float, height: float
) -> list[tuple[Track, list[tuple[float, float]]]]:
    """Each track's points in a width x height box (equirectangular, north up)."""
    tracks = _tracks(d)
    points = [p for t in tracks for p in t.points]
    if not points:
        return []
    lats, lons = [p[0] for p in points], [p[1] for p in points]
    scale_x = math.cos(math.radians((min(lats) + max(lats)) / 2)) or 1e-9
    span_x = max((max(lons) - min(lons)) * scale_x, 1e-6)
    span_y = max(max(lats) - min(lats), 1e-6)
    k = 0.9 * min(width / span_x, height / span_y)
    ox = (width - span_x * k) / 2
    oy = (height - span_y * k) / 2

    def xy(lat: float, lon: float) -> tuple[float, float]:
        return ox + (lon - min(lons)) * scale_x * k, height - (oy + (lat - min(lats)) * k)

    return [(t, [xy(lat, lon) for lat, lon in t.points]) for t in tracks]


def svg_map(d: Digest, width: int = 640, height: int = 400) -> str:
    shapes = projected(d, width, height)
    if not shapes:
        return "<p>No positions were shared with you.</p>"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="positions">',
        f'<rect width="{width}" height="{height}" fill="#f4f4f0" stroke="#999"/>',
    ]
    for i, (track, pts) in enumerate(shapes):
        colour = PALETTE[i % len(PALETTE)]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        label = html.escape(f"{track.name} ({track.org})", quote=True)
        out.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2">'
            f"<title>{label}</title></polyline>"
        )
        x, y = pts[-1]
        out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour}"/>')
        out.append(
            f'<text x="{x + 6:.1f}" y="{y - 6:.1f}" font-size="11" fill="{colour}">{label}</text>'
        )
    out.append("</svg>")
    return "".join(out)


# ------------------------------------------------------------------ HTML

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#111}
table{border-collapse:collapse;width:100%;margin:.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#eee}.restricted{color:#777;font-style:italic}
h1{margin-bottom:0}.meta{color:#555}
.banner{background:#ffd400;color:#000;font-weight:700;padding:.4em .8em;letter-spacing:.05em}
@media print{body{margin:0}h2{page-break-after:avoid}tr{page-break-inside:avoid}}
"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _table(head: tuple[str, ...], rows: Iterator[tuple[Any, ...]] | list[tuple[Any, ...]]) -> str:
    cells = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def summary_rows(d: Digest, scope: Scope) -> list[tuple[str, str]]:
    return [
        ("Incident", d.incident),
        ("Title", d.title),
        ("Category / priority", f"{d.category} / {d.priority}"),
        ("Status", d.status),
        ("Mode", d.mode),
        ("Lead organisation", d.lead_org),
        ("Created", when(d.created)),
        ("Closed", when(d.closed)),
        ("Time to close", duration(d.created, d.closed)),
        ("Events", f"{d.events} ({d.placeholders} restricted entries you may not see)"),
        ("Messages", str(d.messages)),
        ("Exported for", f"{scope.who.name} ({scope.who.org_id})"),
        ("Chain", f"epoch {scope.epoch}, head seq {scope.head_seq}"),
    ]


def participant_rows(d: Digest) -> list[tuple[str, str, str]]:
    return [
        (org, d.liaisons.get(org, ""), ", ".join(sorted(d.people.get(org, {}).values())))
        for org in d.orgs()
    ]


def task_rows(d: Digest) -> list[tuple[Any, ...]]:
    return [
        (
            seq,
            t.title,
            t.assignee,
            t.state,
            when(t.created),
            duration(t.created, t.accepted),
            duration(t.created, t.done),
        )
        for seq, t in sorted(d.tasks.items())
    ]


TASK_HEAD = ("seq", "task", "assignee", "state", "created", "to accept", "to done")


def review_blocks(d: Digest) -> list[tuple[str, list[tuple[str, str]], list[tuple[Any, ...]]]]:
    """(title, fields, action rows) per review the reader may see."""
    blocks = []
    for r in d.reviews:
        title = f"{r.get('org')}: rating {r.get('rating')}/5, by {r.get('_by')} on {when(r['_ts'])}"
        fields = [
            ("Went well", str(r.get("went_well", ""))),
            ("Went badly", str(r.get("went_badly", ""))),
        ]
        actions = [
            (
                a.get("id"),
                a.get("text"),
                a.get("owner"),
                when(int(a["due"] * 1000)) if isinstance(a.get("due"), int | float) else "",
                "done" if str(a.get("id")) in d.actions_done else "open",
            )
            for a in r.get("actions") or ()
            if isinstance(a, dict)
        ]
        blocks.append((title, fields, actions))
    return blocks


ACTION_HEAD = ("id", "action", "owner", "due", "state")
TIMELINE_HEAD = ("seq", "time (UTC)", "who", "type", "what")


def timeline_row(env: dict[str, Any]) -> tuple[Any, ...]:
    if env["type"] == "restricted":
        return (env["seq"], "", "", "restricted", describe(env))
    actor = env.get("actor") or {}
    return (
        env["seq"],
        when(env.get("ts")),
        f"{actor.get('name')} ({actor.get('org')})",
        env["type"],
        describe(env),
    )


async def html_chunks(exporter: Exporter, scope: Scope) -> AsyncIterator[bytes]:
    d = await digest_of(exporter, scope)
    parts = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{esc(d.title)}"
        f" — incident report</title><style>{_STYLE}</style></head><body>",
        *([f"<p class=banner>{esc(note)}</p>"] if (note := banner(d.mode)) else []),
        f"<h1>{esc(d.title)}</h1><p class=meta>Incident report, exported"
        f" {esc(when(int(time.time() * 1000)))}</p>",
        "<h2>Summary</h2>",
        _table(("", ""), summary_rows(d, scope)),
        "<h2>Participants</h2>",
        _table(("organisation", "liaison", "people who acted"), participant_rows(d)),
        "<h2>Status</h2>",
        _table(("time", "from", "to", "note"), [(when(t), a, b, n) for t, a, b, n in d.statuses]),
        "<h2>Tasks</h2>",
        _table(TASK_HEAD, task_rows(d)),
        "<h2>Map of positions</h2>",
        svg_map(d),
        "<h2>Review</h2>",
    ]
    blocks = review_blocks(d)
    if not blocks:
        parts.append("<p>No review has been submitted (or shared with you).</p>")
    for title, fields, actions in blocks:
        parts.append(f"<h3>{esc(title)}</h3>")
        parts.append(_table(("", ""), fields))
        parts.append(_table(ACTION_HEAD, actions))
    parts.append("<h2>Timeline</h2><table><thead><tr>")
    parts.append("".join(f"<th>{esc(h)}</th>" for h in TIMELINE_HEAD) + "</tr></thead><tbody>")
    yield "".join(parts).encode()
    async for page in exporter.pages(scope):
        rows = []
        for env in page:
            cls = ' class="restricted"' if env["type"] == "restricted" else ""
            rows.append(
                f"<tr{cls}>" + "".join(f"<td>{esc(c)}</td>" for c in timeline_row(env)) + "</tr>"
            )
        yield "".join(rows).encode()
    signed = await exporter.finish(scope)
    st = signed.statement
    yield (
        "</tbody></table><h2>Verification</h2>"
        + _table(
            ("", ""),
            [
                ("Head", f"seq {st['seq']}, hash {st['hash']}"),
                ("Signed by", st["key"]),
                ("Signature", signed.signature),
            ],
        )
        + "<p>Check the JSONL export of this incident with <code>liaison verify</code>"
        " or protocol/liaison_verify.py.</p></body></html>"
    ).encode()


# ------------------------------------------------------------------ PDF


def _font() -> tuple[str, str]:
    """A TrueType font with wide coverage if one is installed, else Helvetica."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    for regular, bold in (
        (
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
        ),
    ):
        if Path(regular).exists() and Path(bold).exists():
            pdfmetrics.registerFont(TTFont("LiaisonSans", regular))
            pdfmetrics.registerFont(TTFont("LiaisonSans-Bold", bold))
            return "LiaisonSans", "LiaisonSans-Bold"
    return "Helvetica", "Helvetica-Bold"


class PdfPages:
    """A top-down writer of wrapped lines and simple tables on a reportlab canvas."""

    MARGIN = 40.0

    def __init__(self, out: io.BufferedIOBase | io.BytesIO, title: str) -> None:
        from reportlab.lib.pagesizes import A4
        from reportlab.pdfgen.canvas import Canvas

        self.width, self.height = A4
        self.canvas = Canvas(out, pagesize=A4, pageCompression=1)
        self.canvas.setTitle(title)
        self.font, self.bold = _font()
        self.y = self.height - self.MARGIN

    def _room(self, needed: float) -> None:
        if self.y - needed < self.MARGIN:
            self.canvas.showPage()
            self.y = self.height - self.MARGIN

    def heading(self, text: str, size: float = 14) -> None:
        self._room(size * 2.5)
        self.y -= size * 1.4
        self.canvas.setFont(self.bold, size)
        self.canvas.drawString(self.MARGIN, self.y, text[:200])
        self.y -= size * 0.4

    def row(self, cells: tuple[Any, ...], widths: tuple[float, ...], bold: bool = False) -> None:
        """One table row; cells wrapped by character count (an average glyph is ~0.5 em).

        Measuring every glyph (reportlab's simpleSplit) cost 3 ms a row, most
        of a long export's time; a column a few characters too wide is fine.
        """
        size = 8.0
        font = self.bold if bold else self.font
        wrapped = [
            textwrap.wrap("" if c is None else str(c), max(4, int((w - 4) / (size * 0.5))))[
                :MAX_CELL_LINES
            ]
            or [""]
            for c, w in zip(cells, widths, strict=False)
        ]
        lines = max(len(w) for w in wrapped)
        self._room(lines * size * 1.25 + 2)
        text = self.canvas.beginText()
        text.setFont(font, size)
        x = self.MARGIN
        for texts, w in zip(wrapped, widths, strict=False):
            text.setTextOrigin(x + 2, self.y - size * 1.2)
            text.setLeading(size * 1.2)
            text.textLines(texts)
            x += w
        self.canvas.drawText(text)
        self.y -= lines * size * 1.25 + 2

    def rows(self, rows: list[tuple[Any, ...]], widths: tuple[float, ...]) -> None:
        for r in rows:
            self.row(r, widths)

    def table(
        self, head: tuple[str, ...], rows: list[tuple[Any, ...]], widths: tuple[float, ...]
    ) -> None:
        self.row(head, widths, bold=True)
        for r in rows:
            self.row(r, widths)

    def map(self, d: Digest) -> None:
        box_w, box_h = self.width - 2 * self.MARGIN, 300.0
        shapes = projected(d, box_w, box_h)
        if not shapes:
            self.row(("No positions were shared with you.",), (box_w,))
            return
        self._room(box_h + 10)
        top = self.y
        c = self.canvas
        c.setStrokeColorRGB(0.6, 0.6, 0.6)
        c.rect(self.MARGIN, top - box_h, box_w, box_h)
        for i, (track, pts) in enumerate(shapes):
            c.setStrokeColor(PALETTE[i % len(PALETTE)])
            c.setFillColor(PALETTE[i % len(PALETTE)])
            path = c.beginPath()
            for j, (x, y) in enumerate(pts):
                px, py = self.MARGIN + x, top - y
                path.moveTo(px, py) if j == 0 else path.lineTo(px, py)
            c.drawPath(path, stroke=1, fill=0)
            x, y = pts[-1]
            c.circle(self.MARGIN + x, top - y, 3, stroke=0, fill=1)
            c.setFont(self.font, 7)
            c.drawString(self.MARGIN + x + 5, top - y + 4, f"{track.name} ({track.org})"[:60])
        c.setFillColorRGB(0, 0, 0)
        c.setStrokeColorRGB(0, 0, 0)
        self.y = top - box_h - 6


async def pdf_bytes(exporter: Exporter, scope: Scope, out: io.BufferedIOBase | io.BytesIO) -> None:
    """Draw the report into ``out`` (a spooled file): timeline pages as the log pages come."""
    d = await digest_of(exporter, scope)
    pdf = PdfPages(out, f"Incident report {d.incident}")
    full = pdf.width - 2 * pdf.MARGIN
    if note := banner(d.mode):
        pdf.heading(note, 16)
    pdf.heading(d.title or d.incident, 18)
    pdf.heading("Summary")
    pdf.table(("", ""), summary_rows(d, scope), (140, full - 140))
    pdf.heading("Participants")
    pdf.table(
        ("organisation", "liaison", "people who acted"), participant_rows(d), (130, 110, full - 240)
    )
    pdf.heading("Status")
    pdf.table(
        ("time", "from", "to", "note"),
        [(when(t), a, b, n) for t, a, b, n in d.statuses],
        (120, 70, 70, full - 260),
    )
    pdf.heading("Tasks")
    pdf.table(TASK_HEAD, task_rows(d), (30, full - 390, 90, 60, 90, 60, 60))
    pdf.heading("Map of positions")
    pdf.map(d)
    pdf.heading("Review")
    blocks = review_blocks(d)
    if not blocks:
        pdf.row(("No review has been submitted (or shared with you).",), (full,))
    for title, fields, actions in blocks:
        pdf.heading(title, 11)
        pdf.table(("", ""), fields, (90, full - 90))
        pdf.table(ACTION_HEAD, actions, (60, full - 280, 80, 90, 50))
    pdf.heading("Timeline")
    widths = (35, 95, 120, 90, full - 340)
    pdf.row(TIMELINE_HEAD, widths, bold=True)
    async for page in exporter.pages(scope):
        # Drawn in a thread: a page of rows takes long enough to stall the loop.
        await asyncio.to_thread(pdf.rows, [timeline_row(env) for env in page], widths)
    signed = await exporter.finish(scope)
    st = signed.statement
    pdf.heading("Verification")
    pdf.table(
        ("", ""),
        [
            ("Head", f"seq {st['seq']}, hash {st['hash']}"),
            ("Signed by", st["key"]),
            ("Signature", signed.signature),
        ],
        (90, full - 90),
    )
    pdf.canvas.save()
