"""Where the server finds the files it reads at run time, installed or not.

A built wheel carries the browser client as the package data
``server/client_dist`` (setup.py copies ``client_web/dist`` there); a checkout
(an editable install, the tests) serves ``client_web/dist`` as built by
``make client``. The checkout's build wins when both exist, so a developer
never sees a stale copy. The Lua scripts and the protocol's SPEC and vectors
are package data next to the modules that read them.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

#: The checkout's client build (absent in an installed wheel).
CHECKOUT_CLIENT = Path(__file__).resolve().parent.parent / "client_web" / "dist"


def client_dist() -> Path | None:
    """The directory holding the built client's ``index.html``, or None if none is built."""
    packaged = resources.files("server").joinpath("client_dist")
    for candidate in (CHECKOUT_CLIENT, packaged):
        if isinstance(candidate, Path) and (candidate / "index.html").is_file():
            return candidate
    return None
