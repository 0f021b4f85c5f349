"""Liaison server.

Map (dependencies point inwards)::

    transport/ (socket.io gateway, REST)  ──▶  services/ (application services)
                                                   │
                                  domain/ (pure) ◀─┴─▶ storage/, fanout/ (interfaces)
                                                             ▲
                                  SQLite + memory (embedded)  ·  Redis (many nodes)

    app.py       the composition root: create_app(settings)
    backends.py  the backend set (log, broker, presence, directory, secret) from Settings
    auth.py      password hashes and bearer tokens
    errors.py    server-side exceptions, translated to protocol errors at the edges
    settings.py  frozen settings from flags and LIAISON_* variables
    cli.py       the ``liaison`` command
"""

from server import wait_for_backport

__version__ = "0.1.0"

# Before any of the server's code runs (server, tools, tests): on Python 3.11
# the stock asyncio.wait_for can lose a cancellation (server/wait_for_backport.py).
wait_for_backport.install()
