"""Server-to-client WebSocket frames, built once and written to many transports."""

from __future__ import annotations


def ws_frame(opcode: int, payload: bytes) -> bytes:
    """An unmasked (server-to-client) WebSocket frame."""
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, n))
    elif n < 0x10000:
        header = bytes((0x80 | opcode, 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 127)) + n.to_bytes(8, "big")
    return header + payload
