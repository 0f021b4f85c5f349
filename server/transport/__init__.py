"""Adapters between the network and the application services. Nothing else.

engineio_tuning.py  engine.io settings we must own (no permessage-deflate)
outbox.py           per-connection batching of pre-encoded events, slow-consumer cut-off
gateway.py          Socket.IO: connect/negotiate, ``cmd`` with ack, ``ev`` delivery
rest.py             JSON REST API for bots, reads and admin
"""
