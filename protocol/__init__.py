"""Liaison wire protocol: envelope, message types, codecs, errors. No I/O.

This package imports nothing from the server, so a bot author can vendor it.

Map:
    errors.py   stable error codes (a table with retryable flags) and ProtocolError
    limits.py   the documented size and count limits every peer enforces
    codec.py    JSON (orjson) and msgpack codecs with decoding limits
    v1.py       version 1: inbound command classes, their validation, event types
    webhooks.py Standard Webhooks signing and verification of outbound deliveries
    SPEC.md     the specification for client authors
    vectors/    golden frames both codecs (and the JS client) are checked against

    client frame ──decode(codec)──▶ dict ──v1.parse_command──▶ typed Command
"""

from protocol.errors import ErrorCode, ProtocolError
from protocol.limits import LIMITS, Limits

PROTOCOL_VERSION = 1
#: The hash-chain rule new events are stored with (SPEC 14.1), in ``welcome.chain``:
#: 2 = salted digests. Events stored under rule 1 carry no ``salt``.
CHAIN_RULE = 2
SUPPORTED_VERSIONS = (1,)
ENCODINGS = ("json", "msgpack")

__all__ = [
    "CHAIN_RULE",
    "ENCODINGS",
    "LIMITS",
    "PROTOCOL_VERSION",
    "SUPPORTED_VERSIONS",
    "ErrorCode",
    "Limits",
    "ProtocolError",
]
