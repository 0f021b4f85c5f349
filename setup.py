"""Build hook: the wheel carries the built browser client (``client_web/dist``).

Everything else is declared in pyproject.toml. ``client_web/dist`` is build
output (``make client``) and never committed, so a wheel built without it
would install a server that serves no client: the build fails instead. The
client is copied into the wheel as ``server/client_dist``, where
``server/resources.py`` finds it at run time. Editable installs skip the copy
(the server then reads the checkout's ``client_web/dist``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

CLIENT_DIST = Path(__file__).resolve().parent / "client_web" / "dist"
#: Files the server reads from the client build (server/transport/web_client.py).
REQUIRED = ("index.html", "sw.js", "manifest.webmanifest", "app")


class BuildWithClient(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        missing = [name for name in REQUIRED if not (CLIENT_DIST / name).exists()]
        if missing:
            raise SystemExit(
                f"error: the browser client is not built ({CLIENT_DIST} lacks"
                f" {', '.join(missing)}): run `make client` before building a wheel"
                " (`make wheel` does both)"
            )
        target = Path(self.build_lib) / "server" / "client_dist"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(CLIENT_DIST, target)


setup(cmdclass={"build_py": BuildWithClient})
