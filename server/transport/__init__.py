"""Adapters between the network and the application services. Nothing else.

sio_seam.py         the only module touching python-socketio/engineio: every private hook
outbox.py           per-connection batching of pre-encoded events, slow-consumer cut-off
gateway.py          Socket.IO: connect/negotiate, ``cmd`` with ack, ``ev`` delivery
rest.py             JSON REST API for bots, reads and admin
rest_keys.py        REST routes of bots' API keys (registered by rest.py)
"""
