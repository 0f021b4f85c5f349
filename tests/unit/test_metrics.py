"""Metrics: one registry per app, and JSON log lines that redact every field."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
from prometheus_client import generate_latest

from server.app import create_app
from server.logs import JsonLines, event
from server.metrics import Metrics
from server.settings import Settings


async def test_two_apps_in_one_process_have_registries_of_their_own(tmp_path: Path) -> None:
    """prometheus_client's global registry would refuse the second app's metrics."""
    first, second = Metrics(), Metrics()
    first.events_appended.inc(3)
    assert b"liaison_events_appended_total 3.0" in generate_latest(first.registry)
    assert b"liaison_events_appended_total 0.0" in generate_latest(second.registry)
    for name in ("a", "b"):
        create_app(Settings(data_dir=tmp_path / name))  # no "Duplicated timeseries"


class Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_json_lines_redact_the_message_and_every_field() -> None:
    token = "v1.eyJzdWIiOiJ1X2QifQ.c2lnbmF0dXJlLWJ5dGVz"
    logger = logging.getLogger("tests.json_lines")
    handler = Keep()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        event(logger, logging.INFO, "test.event", "token %s", token, path=f"/x?token={token}")
    finally:
        logger.removeHandler(handler)
    line = JsonLines().format(handler.records[0])
    assert token not in line
    parsed = orjson.loads(line)
    assert parsed["event"] == "test.event"
    assert parsed["msg"] == "token v1.<token>"
    assert parsed["path"].startswith("/x?<query>")
