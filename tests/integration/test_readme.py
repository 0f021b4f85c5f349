"""README.md's tour, run as written against a real server on a non-default port."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, LiaisonServer

README = (ROOT / "README.md").read_text()
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"

pytestmark = pytest.mark.skipif(
    not VENV_PYTHON.exists(), reason="the tour runs from a checkout with its .venv"
)


def block(language: str, containing: str) -> str:
    blocks: list[str] = re.findall(rf"```{language}\n(.*?)```", README, re.S)
    found = [b for b in blocks if containing in b]
    assert len(found) == 1, f"one {language} block with {containing!r} in README.md"
    return found[0]


def bash(script: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script],
        cwd=ROOT,
        env={**os.environ, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def tour_server(tmp_path: Path) -> Iterator[LiaisonServer]:
    srv = LiaisonServer(tmp_path / "data")
    srv.start()
    assert srv.port != 8080
    yield srv
    srv.stop()


def test_shell_tour_works_on_any_port(tour_server: LiaisonServer) -> None:
    env = {"PORT": str(tour_server.port), "LIAISON_DATA_DIR": str(tour_server.data_dir)}
    done = bash(block("sh", "export LIAISON="), env)
    assert done.returncode == 0, done.stderr
    assert '"incidents":[{' in done.stdout
    assert '"events":[{' in done.stdout
    assert '"ok":true' in done.stdout, "the bot's post was stored"
    assert "cad-bot" not in done.stderr
    again = bash(block("sh", "export LIAISON="), env)
    assert '"duplicate":true' in again.stdout, "the same post sent twice is stored once"


def test_shell_tour_says_why_when_login_fails(tour_server: LiaisonServer) -> None:
    tour = block("sh", "export LIAISON=").replace('"password":"liaison-demo"', '"password":"typo"')
    done = bash(tour, {"PORT": str(tour_server.port)})
    assert done.returncode != 0
    assert "error: the server refused: unauthenticated" in done.stderr
    assert "Traceback" not in done.stderr
    nobody = bash(block("sh", "export LIAISON="), {"PORT": "1"})  # no server there
    assert "error: no answer: is the server running" in nobody.stderr
    assert "Traceback" not in nobody.stderr


def test_python_snippet_runs_with_the_venv_and_stops_cleanly(
    tour_server: LiaisonServer, tmp_path: Path
) -> None:
    script = tmp_path / "live.py"
    script.write_text(block("python", "LiaisonClient"))
    proc = subprocess.Popen(
        [str(VENV_PYTHON), str(script)],
        env={**os.environ, "LIAISON": tour_server.url, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 20
        lines: list[str] = []
        while not any(" message.posted " in line for line in lines):
            assert time.monotonic() < deadline, lines
            lines.append(proc.stdout.readline())
        assert lines[0].startswith("stored as seq ")
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_admin_commands_work_as_written(tour_server: LiaisonServer) -> None:
    env = {"LIAISON_DATA_DIR": str(tour_server.data_dir)}
    # One process reads the piped stdin (its buffer takes all of it): the
    # second prompt, reset-password's, is answered with its flag instead.
    script = block("sh", "liaison org add").replace(
        "reset-password nia ", "reset-password nia --password nia-second-shift "
    )
    done = bash(script, env, stdin="nia-first-shift\n")
    assert done.returncode == 0, done.stderr
    for step in ("disable", "enable", "revoke", "reset-password", "delete"):
        assert f"user nia: {step} done" in done.stdout
    assert "chain intact" in done.stdout
    assert "organisation city-outreach added" in done.stdout
    assert "user nia (responder) added to city-outreach" in done.stdout
    assert "nia\tcity-outreach\tresponder\tNia" in done.stdout
    assert "metro-police -> city-outreach\tin force\tfields=name,position" in done.stdout
    assert "organisation city-outreach: default label GREEN" in done.stdout
    assert "\tcity-outreach\tenabled\thttps://cad.example.org/hook\t" in done.stdout
