"""The worker group's port: real sockets in one group, the kernel running our BPF program."""

from __future__ import annotations

import select
import socket

import pytest

from server.transport.reuseport import shared_listener, sticky_program


def accepted_by(listeners: list[socket.socket], port: int, source: str) -> int:
    """Which listener accepts a connection from ``source``."""
    with socket.socket() as client:
        client.bind((source, 0))
        client.connect(("127.0.0.1", port))
        readable, _, _ = select.select(listeners, [], [], 5)
        assert readable, "no listener got the connection"
        conn, (address, _) = readable[0].accept()
        conn.close()
        assert address == source
        return listeners.index(readable[0])


def test_every_connection_of_an_address_reaches_one_worker_and_all_workers_get_some() -> None:
    first = shared_listener("127.0.0.1", 0, 3)
    port = first.getsockname()[1]
    group = [first, shared_listener("127.0.0.1", port, 3), shared_listener("127.0.0.1", port, 3)]
    try:
        dealt = {}
        for i in range(2, 34):
            source = f"127.0.0.{i}"
            picks = {accepted_by(group, port, source) for _ in range(4)}
            assert len(picks) == 1, f"{source} reached workers {picks}"
            dealt[source] = picks.pop()
        assert set(dealt.values()) == {0, 1, 2}
    finally:
        for sock in group:
            sock.close()


def test_a_port_in_use_by_another_program_is_refused() -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        with pytest.raises(OSError, match="in use"):
            shared_listener("127.0.0.1", other.getsockname()[1], 2)


def test_ipv6_listeners_take_the_program_too() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    try:
        sock = shared_listener("::1", 0, 2)
    except OSError as exc:
        pytest.skip(f"no ::1 here: {exc}")
    sock.close()


@pytest.mark.parametrize("workers", [0, 1025])
def test_the_group_size_is_bounded(workers: int) -> None:
    with pytest.raises(ValueError, match="workers"):
        sticky_program(workers)
