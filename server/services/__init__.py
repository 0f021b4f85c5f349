"""Application services: thin orchestration over the domain and the backends.

projections.py  IncidentState per incident, kept current from the log (bounded LRU)
commands.py     decide + append: the one write path for every transport
envelope.py     StoredEvent -> wire envelope (full or placeholder)
hub.py          who follows what; encode once per audience; resume without loss
keyed_locks.py  per-incident locks that exist only while in use
admin.py        users, bootstrap and demo data, shared by the CLI and the REST API
accounts.py     logins, sessions, the account lifecycle, the revocation guard
api_keys.py     bots' API keys: create, revoke, and the in-memory check on every request
"""
