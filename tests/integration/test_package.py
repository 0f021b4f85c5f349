"""The built wheel, installed outside the checkout, is a whole server.

deploy/README.md §1 installs Liaison with ``pip install`` of a wheel, not an
editable checkout. Before this test the installed server served no client
(it looked for ``client_web/dist`` next to the package). Here the wheel is
built once from a copy of the sources (as ``make wheel`` does), installed
into a fresh venv in a temporary directory (``--no-deps``: the dependencies
are this venv's, reached by a path entry, not reinstalled), and that venv's
``liaison serve`` must serve the client, log in and store a post on the
embedded default and on a real Redis (the Lua scripts are in the wheel).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import urllib.request
import venv
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from liaison_client import LiaisonClient
from tests.conftest import ROOT, LiaisonServer, connect, new_incident
from tests.redis_server import RedisServer


def _sources(target: Path) -> Path:
    """A copy of the checkout's tracked (and new, unignored) files: no build output."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for name in filter(None, (raw.decode() for raw in listed)):
        source = ROOT / name
        if name.startswith(("client_web/", "tests/", "bench/")) or not source.is_file():
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / name)
    return target


def _build_wheel(sources: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """The PEP 517 hook that ``make wheel`` (pip wheel) calls, run offline by this
    venv's setuptools: without pip's own start-up and metadata pass."""
    out.mkdir(parents=True, exist_ok=True)
    hook = f"from setuptools import build_meta; build_meta.build_wheel({str(out)!r})"
    return subprocess.run(
        [sys.executable, "-c", hook], cwd=sources, capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin`` directory of a fresh venv with only the wheel installed in it."""
    base = tmp_path_factory.mktemp("package")
    sources = _sources(base / "src")
    # First without the client: the build must fail, not ship a wheel without it.
    refused = _build_wheel(sources, base / "refused")
    assert refused.returncode != 0
    assert "the browser client is not built" in refused.stderr
    assert list((base / "refused").iterdir()) == []
    shutil.copytree(ROOT / "client_web" / "dist", sources / "client_web" / "dist")
    built = _build_wheel(sources, base / "wheels")
    assert built.returncode == 0, built.stderr
    (wheel,) = (base / "wheels").glob("liaison-*.whl")
    env_dir = base / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # The dependencies from this venv, as a plain path entry: its .pth files
    # (the editable install of the checkout among them) are not processed.
    Path(purelib, "liaison-test-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--no-index",
            "--no-compile",
            str(wheel),
        ],
        check=True,
    )
    where = subprocess.run(
        [str(python), "-c", "import server; print(server.__file__)"],
        cwd=base,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert where.startswith(str(env_dir)), f"the server is imported from {where}"
    return env_dir / "bin"


@pytest.fixture(scope="module")
def installed_servers(
    installed: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, LiaisonServer]]:
    """The installed ``liaison serve`` on the embedded default and on a real Redis,
    started side by side (most of their start is the demo's password hashing)."""
    base = tmp_path_factory.mktemp("installed")
    redis = RedisServer(base / "redis")
    redis.start()
    servers = {
        "embedded": LiaisonServer(base / "embedded"),
        "redis": LiaisonServer(base / "on-redis", {"LIAISON_REDIS_URL": redis.url}),
    }
    for srv in servers.values():
        srv.command, srv.cwd = [str(installed / "liaison")], base
    try:
        with ThreadPoolExecutor(len(servers)) as pool:
            list(pool.map(LiaisonServer.start, servers.values()))
        yield servers
    finally:
        for srv in servers.values():
            srv.stop()
        redis.stop()
    for srv in servers.values():
        assert srv.errors_logged() == []


def _get(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 (loopback)
        return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()


@pytest.mark.parametrize("backend", ["embedded", "redis"])
async def test_the_installed_server_serves_the_client_and_stores_a_post(
    installed_servers: dict[str, LiaisonServer], backend: str, clients: list[LiaisonClient]
) -> None:
    installed_server = installed_servers[backend]
    status, kind, page = _get(installed_server.url + "/")
    assert (status, kind.split(";")[0]) == (200, "text/html")
    assert "/app/" in page
    assert "not built" not in page
    script = page.split('src="', 1)[1].split('"', 1)[0]
    status, kind, _ = _get(installed_server.url + script)
    assert (status, kind.split(";")[0]) == (200, "text/javascript")

    dispatcher = await connect(clients, installed_server, "dispatch")
    incident = await new_incident(dispatcher, "Installed from the wheel")
    ack = await dispatcher.post(incident, "stored by the installed server")
    texts = [e["body"].get("text") for e in await dispatcher.timeline(incident)]
    assert "stored by the installed server" in texts
    assert ack["seq"] == len(texts)
