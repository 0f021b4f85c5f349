"""The ``liaison`` command as a newcomer meets it: the real entry point, as a subprocess."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
import urllib.request
from dataclasses import fields
from importlib.metadata import version
from pathlib import Path
from typing import cast

import orjson
import pytest

from server.settings import Settings
from tests.conftest import ROOT, LiaisonServer

LIAISON = str(Path(sys.executable).with_name("liaison"))


def liaison(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LIAISON, *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_help_describes_every_setting_with_a_human_default() -> None:
    out = liaison("--help").stdout
    assert "PosixPath" not in out
    assert "()" not in out
    assert "''" not in out
    for f in fields(Settings):
        line = re.search(rf"^  LIAISON_{f.name.upper()}=(.*)\n      (.+)$", out, re.M)
        assert line, f"LIAISON_{f.name.upper()} is not described in --help"
        assert line.group(2).strip(), f"LIAISON_{f.name.upper()} has no description"
    assert "  LIAISON_DATA_DIR=./data\n" in out
    assert "  LIAISON_PING_INTERVAL_S=20\n" in out
    assert "  LIAISON_DEMO=off\n" in out


def test_version_is_the_installed_package_version() -> None:
    done = liaison("--version")
    assert (done.returncode, done.stdout.strip()) == (0, f"liaison {version('liaison')}")


@pytest.mark.parametrize(
    "command",
    [
        ["org", "add", "rangers", "Wildlife Rangers"],
        ["org", "list"],
        ["user", "add", "nia", "--org", "rangers", "--role", "responder", "--password", "x" * 12],
        ["user", "list"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_admin_commands_refuse_a_data_dir_without_a_database(
    tmp_path: Path, command: list[str]
) -> None:
    typo = tmp_path / "dta"
    done = liaison(*command, "--data-dir", str(typo))
    assert done.returncode == 2
    assert "holds no Liaison database" in done.stderr
    assert "--init" in done.stderr
    assert "Traceback" not in done.stderr
    assert not typo.exists(), "nothing was created"


def test_init_creates_a_database_that_the_server_then_serves(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "new")]
    assert liaison("org", "add", "rangers", "Wildlife Rangers", *data, "--init").returncode == 0
    listed = liaison("org", "list", *data)  # now it holds one: no --init needed
    assert (listed.returncode, listed.stdout) == (0, "rangers\tngo\tWildlife Rangers\tAMBER\n")


def test_short_password_is_refused_with_the_rule(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path), "--init"]
    liaison("org", "add", "rangers", "Wildlife Rangers", *data)
    done = liaison(
        "user", "add", "nia", "--org", "rangers", "--role", "responder", "--password", "...", *data
    )
    assert done.returncode == 1
    assert "at least 8 characters" in done.stderr


def test_generated_admin_password_is_kept_privately_and_logs_in(tmp_path: Path) -> None:
    srv = LiaisonServer(tmp_path / "data", env={"LIAISON_ADMIN_PASSWORD": ""})
    srv.start()
    try:
        kept = srv.data_dir / "initial-admin-password"
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600
        password = kept.read_text().strip()
        assert f"generated password: {password}" in srv.log_path.read_text()
        assert str(kept.resolve()) in srv.log_path.read_text(), "the output says where it is"
        login = urllib.request.Request(  # noqa: S310 - loopback
            srv.url + "/api/v1/auth/login",
            data=f'{{"username":"admin","password":"{password}"}}'.encode(),
        )
        with urllib.request.urlopen(login, timeout=5) as resp:  # noqa: S310
            assert resp.status == 200
    finally:
        srv.stop()


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize(
    ("env", "args", "expected"),
    [
        ({}, [], "--host 127.0.0.1 --port 8080 --data-dir ./data"),
        (
            {"LIAISON_HOST": "0.0.0.0", "LIAISON_PORT": "9123", "LIAISON_DATA_DIR": "/srv/l"},  # noqa: S104
            [],
            "--host 0.0.0.0 --port 9123 --data-dir /srv/l",
        ),
        ({"LIAISON_PORT": "9123"}, ["PORT=9200", "DATA=/tmp/d"], "--port 9200 --data-dir /tmp/d"),
    ],
    ids=["defaults", "liaison-env", "make-vars-win"],
)
def test_make_run_takes_the_port_and_data_dir_from_the_environment_or_make(
    env: dict[str, str], args: list[str], expected: str
) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LIAISON_")}
    clean.pop("PORT", None)
    done = subprocess.run(
        ["make", "-n", "run", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env={**clean, **env},
        check=False,
    )
    serve = [line for line in done.stdout.splitlines() if "liaison serve" in line]
    assert serve, done.stdout
    assert expected in serve[0], done.stdout


def test_every_cli_admin_action_is_audited_as_over_rest(tmp_path: Path) -> None:
    """``org add`` and ``user add`` were the two CLI admin actions with no audit
    record; each is now ``org.create`` / ``user.create`` as POST /api/v1/orgs and
    /api/v1/users record it, failures with the code they ended with."""
    data = ("--data-dir", str(tmp_path / "data"))
    assert liaison("org", "add", "rangers", "Wildlife Rangers", *data, "--init").returncode == 0
    assert liaison("org", "add", "rangers", "Again", *data).returncode == 1  # taken
    nia = ("user", "add", "nia", "--org", "rangers", "--role", "responder")
    assert liaison(*nia, "--password", "x" * 12, *data).returncode == 0
    assert liaison(*nia, "--password", "y" * 12, *data).returncode == 1  # taken
    for args in (
        ("user", "disable", "nia"),
        ("user", "enable", "nia"),
        ("user", "revoke", "nia"),
        ("user", "reset-password", "nia", "--password", "z" * 12),
        ("user", "delete", "nia"),
        ("user", "delete", "nobody"),
        ("audit", "verify"),
    ):
        liaison(*args, *data)
    out = liaison("audit", "export", *data)
    assert out.returncode == 0, out.stderr
    records = [orjson.loads(line) for line in out.stdout.splitlines()]
    assert all(r["actor"].startswith("cli:") for r in records)
    assert [(r["action"], r["target"], r["outcome"]) for r in records] == [
        ("org.create", "rangers", "ok"),
        ("org.create", "rangers", "conflict"),
        ("user.create", "u_nia", "ok"),
        ("user.create", "u_nia", "conflict"),
        ("user.disable", "u_nia", "ok"),
        ("user.enable", "u_nia", "ok"),
        ("user.revoke_sessions", "u_nia", "ok"),
        ("user.reset_password", "u_nia", "ok"),
        ("user.delete", "u_nia", "ok"),
        ("user.delete", "nobody", "not_found"),
        ("audit.verify", "", "ok"),
    ]
    assert records[0]["detail"] == {"kind": "ngo"}
    assert records[2]["detail"] == {"org": "rangers", "role": "responder"}


def test_user_set_phone_stores_checks_removes_and_audits(tmp_path: Path) -> None:
    """``user set-phone`` is the CLI's way to give a liaison a tap-to-call number:
    stored trimmed, refused with the rule when not a number, removed with "",
    and audited as ``user.set_phone`` like POST /api/v1/users/{id}/phone."""
    data = ("--data-dir", str(tmp_path / "data"))
    assert liaison("org", "add", "rangers", "Wildlife Rangers", *data, "--init").returncode == 0
    nia = ("user", "add", "nia", "--org", "rangers", "--role", "responder")
    assert liaison(*nia, "--password", "x" * 12, *data).returncode == 0

    def stored() -> str | None:
        with contextlib.closing(sqlite3.connect(tmp_path / "data" / "directory.db")) as db:
            (phone,) = db.execute("SELECT phone FROM users WHERE id = 'u_nia'").fetchone()
        return cast("str | None", phone)

    ok = liaison("user", "set-phone", "nia", " +44 20 7946 0303 ", *data)
    assert ok.returncode == 0, ok.stderr
    assert "phone set" in ok.stdout
    assert stored() == "+44 20 7946 0303"
    bad = liaison("user", "set-phone", "nia", "call me", *data)
    assert bad.returncode == 1
    assert "digits" in bad.stderr
    assert stored() == "+44 20 7946 0303"
    assert liaison("user", "set-phone", "nobody", "112", *data).returncode == 1
    removed = liaison("user", "set-phone", "nia", "", *data)
    assert removed.returncode == 0, removed.stderr
    assert "phone removed" in removed.stdout
    assert stored() is None
    out = liaison("audit", "export", *data)
    records = [orjson.loads(line) for line in out.stdout.splitlines()]
    assert [
        (r["action"], r["target"], r["outcome"]) for r in records if r["action"] == "user.set_phone"
    ] == [
        ("user.set_phone", "u_nia", "ok"),
        ("user.set_phone", "u_nia", "invalid"),
        ("user.set_phone", "nobody", "not_found"),
        ("user.set_phone", "u_nia", "ok"),
    ]
