"""SocketServer.ack_text writes what python-socketio's own ACK packet encodes to."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from socketio import packet as sio_packet

from server.transport.gateway import _OrjsonModule
from server.transport.sio_seam import SocketServer

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
SERVER = SocketServer(async_mode="aiohttp", json=_OrjsonModule, logger=False)


@given(st.integers(0, 2**31), json_values)
def test_the_text_is_the_packets_own_encoding(ack_id: int, payload: Any) -> None:
    expected = SERVER.packet_class(
        sio_packet.ACK, namespace="/", id=ack_id, data=[payload]
    ).encode()
    assert SERVER.ack_text(ack_id, payload) == expected


def test_a_payload_with_bytes_has_no_text() -> None:
    assert SERVER.ack_text(7, {"ok": True, "blob": b"\x00"}) is None
