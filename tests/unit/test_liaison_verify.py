"""The standalone verifier (protocol/liaison_verify.py) against exports and their tampering.

Exports are built here the way the server builds them (chain.py sequences,
envelope.py shapes, anchors.py signs); each tampering an auditor must catch
is applied to a copy and the verifier must name it, with exit status 1.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import liaison_verify as lv
from server.domain.audience import PLACEHOLDER, Audience
from server.domain.chain import ChainHead
from server.domain.events import EventDraft, StoredEvent
from server.domain.sharing import FieldClass
from server.services.anchors import NodeSigner
from server.services.envelope import envelope, shaped

INCIDENT, EPOCH = "inc_verify", "e1"
SEED = b"11" * 32
OTHER_SEED = b"22" * 32


def events(n: int = 6) -> list[StoredEvent]:
    head = ChainHead(EPOCH, 0, "0" * 64, 0)
    out = []
    for i in range(n):
        kind = "responder.position" if i == 2 else "message.posted"
        body: dict[str, Any] = (
            {
                "position": {"lat": 51.5 + i / 1000, "lon": -0.0754, "accuracy_m": 5.0},
                "tlp": "AMBER",
            }
            if kind == "responder.position"
            else {"text": f"message {i} — ✓ 1e-05", "tlp": "AMBER"}
        )
        visibility = ("metro-police",) if i == 3 else None
        draft = EventDraft(INCIDENT, kind, "u_a", "metro-police", "A", f"c{i}", visibility, body)
        out.append(head.append(draft, 1_000 + i))
    return out


def export(evs: list[StoredEvent], seed: bytes = SEED, shape: bool = True) -> list[dict[str, Any]]:
    """Header, envelopes (seq 3 redacted, seq 4 a placeholder when ``shape``), signed trailer."""
    envs = []
    for ev in evs:
        if shape and ev.seq == 4:
            envs.append(shaped(ev, PLACEHOLDER))
        elif shape and ev.seq == 3:
            envs.append(shaped(ev, Audience(True, frozenset({FieldClass.POSITION}))))
        else:
            envs.append(envelope(ev))
    signed = NodeSigner(seed).signed_head(INCIDENT, EPOCH, evs[-1].seq, evs[-1].hash, 5)
    header = {"liaison_export": 1, "kind": "header", "incident": INCIDENT, "epoch": EPOCH}
    trailer = {
        "liaison_export": 1,
        "kind": "trailer",
        "incident": INCIDENT,
        "epoch": EPOCH,
        "events": len(evs),
        "head": signed.statement,
        "signature": signed.signature,
    }
    return [header, *envs, trailer]


def lines(items: list[dict[str, Any]]) -> list[str]:
    return [orjson.dumps(item).decode() for item in items]


KEY = NodeSigner(SEED).public_hex


def problems(items: list[dict[str, Any]], **kw: Any) -> list[str]:
    return lv.verify_lines(lines(items), kw.pop("key", KEY), **kw).problems


def test_an_untouched_export_verifies_placeholders_and_redactions_by_their_links() -> None:
    items = export(events())
    assert items[4]["type"] == "restricted"
    assert "salt" not in items[4]
    assert items[3]["redacted"] == ["position"]
    assert "salt" not in items[3]
    report = lv.verify_lines(lines(items), KEY)
    assert report.ok, report.problems
    assert report.incidents == [(INCIDENT, 6)]


def test_an_edited_event_is_named() -> None:
    items = export(events())
    items[2]["body"]["text"] = "nothing happened"
    assert problems(items) == ["line 3 (seq 2): its content does not match its digest: edited"]


def test_a_dropped_event_is_named() -> None:
    items = export(events())
    del items[5]
    found = problems(items)
    assert "line 6 (seq 6): expected seq 5: an event is missing or out of order" in found
    assert any("does not chain" in p for p in found)


def test_reordered_events_are_named() -> None:
    items = export(events())
    items[1], items[2] = items[2], items[1]
    found = problems(items)
    assert found[0] == "line 2 (seq 2): expected seq 1: an event is missing or out of order"


def test_a_tampered_placeholder_link_is_named() -> None:
    items = export(events())
    items[4]["digest"] = "0" * 64
    assert problems(items)[0] == "line 5 (seq 4): its hash does not chain from seq 3"


def test_a_head_signed_by_another_key_is_named() -> None:
    items = export(events(), seed=OTHER_SEED)
    other = NodeSigner(OTHER_SEED).public_hex
    assert problems(items) == [
        f"incident {INCIDENT}: the head is signed by key {other[:16]}…, not the pinned {KEY[:16]}…"
    ]


def test_an_altered_head_is_named() -> None:
    items = export(events())
    items[-1]["head"]["ts_ms"] += 1
    assert problems(items) == [
        f"incident {INCIDENT}: the head's signature does not verify: the head was altered"
    ]


def test_a_cut_file_is_named() -> None:
    items = export(events())[:-2]
    assert problems(items) == [
        f"incident {INCIDENT}: no trailer: the export is cut short after seq 5"
    ]
    dropped_tail = export(events())
    del dropped_tail[-2]
    found = problems(dropped_tail)
    assert any("events were added or removed at the end" in p for p in found)


def anchor_records(evs: list[StoredEvent], seed: bytes = SEED) -> list[dict[str, Any]]:
    signer = NodeSigner(seed)
    head = signer.signed_head(INCIDENT, EPOCH, evs[3].seq, evs[3].hash, 7)
    return [{"seq": 1, "detail": head.to_wire()}]


def test_a_history_rewritten_by_the_operator_is_caught_by_the_auditors_anchor() -> None:
    """Same key, chain recomputed from seq 2 on: only the anchor kept earlier tells."""
    original = events()
    anchors = anchor_records(original)
    assert problems(export(original), anchors=anchors) == []
    head = ChainHead(EPOCH, 1, original[0].hash, original[0].ts_ms)
    rewritten = [original[0]]
    for ev in original[1:]:
        body = {"text": "rewritten", "tlp": "AMBER"} if ev.seq == 2 else ev.body
        draft = EventDraft(
            INCIDENT, ev.type, ev.actor_user, ev.actor_org, "A", ev.client_id, ev.visibility, body
        )
        rewritten.append(head.append(draft, ev.ts_ms))
    assert problems(export(rewritten)) == []  # on its own, a perfect forgery
    assert problems(export(rewritten), anchors=anchors) == [
        f"incident {INCIDENT}: seq 4 differs from the anchored head: history was rewritten"
    ]
    assert problems(export(original)[:4] + export(original)[-1:], anchors=anchors)  # cut


def test_an_anchor_signed_by_another_key_is_refused() -> None:
    found = problems(export(events()), anchors=anchor_records(events(), OTHER_SEED))
    assert found == [
        "anchor 1: signed by key "
        + NodeSigner(OTHER_SEED).public_hex[:16]
        + "…, not the pinned key"
    ]


def test_the_file_runs_alone_with_exit_codes(tmp_path: Path) -> None:
    """Copied out of the tree, run by path: 0 for a good file, 1 with the problem otherwise."""
    tool = tmp_path / "liaison_verify.py"
    tool.write_text(Path(lv.__file__).read_text())
    good, bad = tmp_path / "good.jsonl", tmp_path / "bad.jsonl"
    good.write_text("\n".join(lines(export(events()))) + "\n")
    tampered = export(events())
    tampered[1]["body"]["text"] = "edited"
    bad.write_text("\n".join(lines(tampered)) + "\n")
    env = {**os.environ, "PYTHONPATH": ""}
    run = [sys.executable, "-I", str(tool)]
    ok = subprocess.run(
        [*run, str(good), "--key", KEY],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    failed = subprocess.run(
        [*run, str(bad), "--key", KEY],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert failed.returncode == 1
    assert "FAIL: line 2 (seq 1): its content does not match its digest: edited" in failed.stdout


def test_it_imports_only_the_standard_library_and_cryptography() -> None:
    tree = ast.parse(Path(lv.__file__).read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots.add(node.module.split(".")[0])
    assert roots - sys.stdlib_module_names == {"cryptography"}


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_are_written_as_orjson_writes_them(value: float) -> None:
    assert lv.canonical_float(value) == orjson.dumps(value).decode()


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(JSON)
def test_canonical_json_is_orjsons_sorted_form(value: Any) -> None:
    assert lv.canonical(value) == orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


@pytest.mark.parametrize("bad", ["not json", "[1]", '{"seq": 1}'])
def test_garbage_lines_are_named_not_raised(bad: str) -> None:
    report = lv.verify_lines([bad], KEY)
    assert not report.ok
