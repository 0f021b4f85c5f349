"""A deliberately minimal WebSocket client over a plain socket, for fault tests.

It lets a test control the socket itself (a tiny receive buffer, never reading)
in ways a full client library would not.
"""

from __future__ import annotations

import base64
import os
import socket
import struct


class RawWebSocket:
    def __init__(
        self,
        host: str,
        port: int,
        path: str,
        rcvbuf: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect((host, port))
        key = base64.b64encode(os.urandom(16)).decode()
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n{extra}\r\n".encode()
        )
        self.buffer = b""
        self.last_opcode = 0
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.sock.recv(4096)
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head
        #: The server's 101 response: status line and headers.
        self.head = head.decode("latin-1")

    def send_text(self, text: str) -> None:
        self.send_frame(text.encode())

    def send_frame(self, payload: bytes, opcode: int = 0x1) -> None:
        """One masked frame; ``payload`` need not be valid UTF-8 even for text."""
        mask = os.urandom(4)
        header = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 65536:
            header += bytes([0x80 | 126]) + n.to_bytes(2, "big")
        else:
            header += bytes([0x80 | 127]) + n.to_bytes(8, "big")
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def recv_text(self) -> str:
        """One unfragmented text frame (enough for handshake replies).

        A close frame from the server raises ConnectionError, like EOF.
        """
        while True:
            frame = self._parse()
            if frame is not None:
                if self.last_opcode == 0x8:
                    raise ConnectionError("closed by the server")
                return frame.decode()
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buffer += chunk

    def _parse(self) -> bytes | None:
        if len(self.buffer) < 2:
            return None
        self.last_opcode = self.buffer[0] & 0x0F
        n, offset = self.buffer[1] & 0x7F, 2
        if n == 126:
            n, offset = int.from_bytes(self.buffer[2:4], "big"), 4
        elif n == 127:
            n, offset = int.from_bytes(self.buffer[2:10], "big"), 10
        if len(self.buffer) < offset + n:
            return None
        payload = self.buffer[offset : offset + n]
        self.buffer = self.buffer[offset + n :]
        return payload

    def drain(self, until: bytes | None = None) -> bytes:
        """Read everything until the server closes the connection (or ``until`` arrives)."""
        data = self.buffer
        self.sock.settimeout(10)
        while until is None or until not in data:
            try:
                chunk = self.sock.recv(1 << 20)
            except (ConnectionResetError, TimeoutError):
                return data
            if not chunk:
                return data
            data += chunk
        return data

    def close(self) -> None:
        self.sock.close()

    def reset(self) -> None:
        """Close with a TCP RST, as a phone whose connection dropped does."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()
