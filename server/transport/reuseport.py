"""One listening port shared by the worker processes of a host, sticky by client address.

``SO_REUSEPORT`` lets every worker bind the same address; the kernel then
picks a worker per new TCP connection. Its default pick hashes the whole
4-tuple, so a long-polling client, whose requests arrive on several
connections, would reach a worker that never saw its engine.io session
("Invalid session", PITFALLS.md). A classic BPF program attached to the
group picks by the client's IP address alone instead, like nginx's
``ip_hash``: every connection of one client reaches the same worker.

When a worker leaves the group the kernel moves the last socket into its
slot, so the clients of two workers are re-dealt; their polling sessions end
as after a lost node and the clients reconnect. An index the group does not
have yet (a worker still starting) falls back to the kernel's own hash.
"""

from __future__ import annotations

import ctypes
import socket
import struct

#: <asm-generic/socket.h>: not in the ``socket`` module.
SO_ATTACH_REUSEPORT_CBPF = 51
#: <linux/filter.h>: loads relative to the network (IP) header.
SKF_NET_OFF = -0x100000

# Classic BPF opcodes (<linux/bpf_common.h>).
_LD, _ALU, _JMP, _RET = 0x00, 0x04, 0x05, 0x06
_W, _B, _ABS = 0x00, 0x10, 0x20
_K, _A = 0x00, 0x10
_RSH, _MUL, _MOD = 0x70, 0x20, 0x90
_JEQ, _JA = 0x10, 0x00
#: Knuth's multiplicative hash: spreads neighbouring addresses over the workers.
_GOLDEN = 0x9E3779B1


def _insn(code: int, k: int = 0, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k & 0xFFFFFFFF)


def sticky_program(workers: int) -> bytes:
    """A cBPF program returning ``hash(source address) % workers``.

    IPv4: the source address (IP header bytes 12-15); IPv6: the last 32 bits
    of it (bytes 20-23), which differ between hosts of one network.
    """
    if not 1 <= workers <= 1024:
        raise ValueError(f"workers must be 1..1024, not {workers}")
    return b"".join(
        (
            _insn(_LD | _B | _ABS, SKF_NET_OFF),  # A = version and IHL
            _insn(_ALU | _RSH | _K, 4),  # A = IP version
            _insn(_JMP | _JEQ | _K, 6, jt=0, jf=2),
            _insn(_LD | _W | _ABS, SKF_NET_OFF + 20),  # IPv6 source, last word
            _insn(_JMP | _JA, 1),
            _insn(_LD | _W | _ABS, SKF_NET_OFF + 12),  # IPv4 source
            _insn(_ALU | _MUL | _K, _GOLDEN),
            _insn(_ALU | _RSH | _K, 16),
            _insn(_ALU | _MOD | _K, workers),
            _insn(_RET | _A),
        )
    )


def attach_sticky(sock: socket.socket, workers: int) -> None:
    """Install the program on ``sock``'s reuseport group (the kernel copies it)."""
    program = sticky_program(workers)
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("@HP", len(program) // 8, ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)


def shared_listener(host: str, port: int, workers: int, backlog: int = 1024) -> socket.socket:
    """A listening socket of the host's worker group on ``host:port``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        # After listen: a program attached earlier gives the socket a group
        # of its own, and the listen of a second worker fails (EADDRINUSE).
        sock.listen(backlog)
        attach_sticky(sock, workers)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
