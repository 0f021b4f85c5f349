"""Only the seam module touches python-socketio / python-engineio (issue 8, item 1).

Every private hook lives in server/transport/sio_seam.py, where each has a
docstring and a test (tests/integration/test_sio_seam.py). A hook added
anywhere else would escape both, and the version check.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from server.transport import sio_seam

SERVER = Path(__file__).resolve().parents[2] / "server"
SEAM = SERVER / "transport" / "sio_seam.py"
LIBRARIES = ("socketio", "engineio")


def _modules() -> list[Path]:
    return sorted(p for p in SERVER.rglob("*.py") if p != SEAM)


def _imports(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _private_reads(tree: ast.AST) -> list[str]:
    """``x._name`` where x is not ``self``/``cls``: another object's private attribute."""
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
        ):
            found.append(f"line {node.lineno}: .{node.attr}")
    return found


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SERVER)))
def test_only_the_seam_imports_socketio_or_engineio(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    offending = [n for n in _imports(tree) if n.split(".")[0] in LIBRARIES]
    assert not offending, f"{path.name} imports {offending}: go through sio_seam"


def test_no_private_attribute_access_outside_the_seam() -> None:
    found = {
        str(p.relative_to(SERVER)): reads
        for p in _modules()
        if (reads := _private_reads(ast.parse(p.read_text(), str(p))))
    }
    assert found == {}, f"private attribute access outside sio_seam: {found}"


def test_the_version_check_names_each_mismatch() -> None:
    installed = dict(sio_seam.VERIFIED, **{"python-engineio": "4.99.0"})
    assert sio_seam.version_mismatches(installed) == [
        "python-engineio: installed 4.99.0, verified 4.15.1"
    ]
    with pytest.raises(sio_seam.UnverifiedVersions, match="python-engineio"):
        sio_seam.check_versions(installed)


def test_the_installed_versions_are_the_verified_ones() -> None:
    """requirements.lock and VERIFIED agree: a lock bump must re-verify the seam."""
    assert sio_seam.version_mismatches() == []
    lock = (SERVER.parent / "requirements.lock").read_text()
    for name, version in sio_seam.VERIFIED.items():
        assert f"{name}=={version} " in lock, f"{name} {version} is not what requirements.lock pins"


def test_unverified_versions_can_be_allowed_explicitly(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(sio_seam.ALLOW_UNVERIFIED_ENV, "1")
    sio_seam.check_versions(dict(sio_seam.VERIFIED, aiohttp="9.0.0"))
    assert any(r.levelname == "ERROR" and "aiohttp" in r.getMessage() for r in caplog.records)
