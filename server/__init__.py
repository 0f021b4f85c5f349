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

__version__ = "0.1.0"
