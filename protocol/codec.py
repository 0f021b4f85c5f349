"""JSON and msgpack codecs with decoding limits.

Both codecs turn a frame into plain Python values (dict, list, str, int, float,
bool, None) and back. Decoding checks the byte size first, then decodes with
bounded structures (msgpack ``Unpacker`` limits: 0.5 MB of empty msgpack maps
once became 44 MiB of heap), then checks nesting depth.
"""

from __future__ import annotations

from typing import Any, Protocol

import msgpack
import orjson

from protocol.errors import ErrorCode, ProtocolError
from protocol.limits import LIMITS, Limits


class Codec(Protocol):
    """Encodes and decodes protocol values; ``name`` is what ``welcome`` announces."""

    name: str

    def encode(self, value: Any) -> bytes: ...

    def decode(self, frame: bytes | str) -> Any: ...


def _check_depth(value: Any, max_depth: int, depth: int = 0) -> None:
    """Refuse deep nesting, and values JSON cannot carry (msgpack bin and ext).

    Stops at ``max_depth``, so its own recursion is bounded whatever the input.
    """
    if depth > max_depth:
        raise ProtocolError(ErrorCode.INVALID, f"nesting deeper than {max_depth}")
    if isinstance(value, bytes | msgpack.ExtType):
        raise ProtocolError(ErrorCode.MALFORMED, "binary and extension values are not allowed")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):  # msgpack allows bin keys, even empty ones
                raise ProtocolError(ErrorCode.MALFORMED, "map keys must be strings")
            _check_depth(item, max_depth, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_depth(item, max_depth, depth + 1)


def _check_size(frame: bytes | str, limits: Limits) -> None:
    # len(str) undercounts bytes by at most 4x; encode only when it might matter.
    size = len(frame)
    if isinstance(frame, str) and size * 4 > limits.max_frame_bytes:
        size = len(frame.encode("utf-8", "surrogatepass"))
    if size > limits.max_frame_bytes:
        raise ProtocolError(
            ErrorCode.TOO_LARGE,
            f"frame of {size} bytes exceeds {limits.max_frame_bytes}",
            {"limit": limits.max_frame_bytes},
        )


class JsonCodec:
    """JSON via orjson. Non-string dict keys and NaN are refused by orjson."""

    name = "json"

    def __init__(self, limits: Limits = LIMITS) -> None:
        self.limits = limits

    def encode(self, value: Any) -> bytes:
        return orjson.dumps(value)

    def decode(self, frame: bytes | str) -> Any:
        _check_size(frame, self.limits)
        try:
            value = orjson.loads(frame)
        except orjson.JSONDecodeError as exc:
            raise ProtocolError(ErrorCode.MALFORMED, f"invalid JSON: {exc}") from exc
        _check_depth(value, self.limits.max_depth)
        return value


class MsgpackCodec:
    """msgpack with bounded unpacking; binary and ext types are refused on input."""

    name = "msgpack"

    def __init__(self, limits: Limits = LIMITS) -> None:
        self.limits = limits

    def encode(self, value: Any) -> bytes:
        data: bytes = msgpack.packb(value, use_bin_type=True)
        return data

    def decode(self, frame: bytes | str) -> Any:
        if isinstance(frame, str):
            raise ProtocolError(ErrorCode.MALFORMED, "msgpack frames must be binary")
        _check_size(frame, self.limits)
        limit = self.limits.max_frame_bytes
        unpacker = msgpack.Unpacker(
            raw=False,
            strict_map_key=True,
            max_buffer_size=limit,
            max_str_len=limit,
            max_bin_len=0,
            max_ext_len=0,
            max_array_len=self.limits.max_list_items * 10,
            max_map_len=256,
        )
        try:
            unpacker.feed(frame)
            value = unpacker.unpack()
        except (ValueError, msgpack.ExtraData, msgpack.OutOfData) as exc:
            raise ProtocolError(ErrorCode.MALFORMED, f"invalid msgpack: {exc}") from exc
        except Exception as exc:  # msgpack raises several unrelated types on garbage
            raise ProtocolError(ErrorCode.MALFORMED, f"invalid msgpack: {exc}") from exc
        if unpacker.tell() != len(frame):
            raise ProtocolError(ErrorCode.MALFORMED, "trailing bytes after msgpack value")
        _check_depth(value, self.limits.max_depth)
        return value


def msgpack_array_header(n: int) -> bytes:
    """The msgpack header of an array of ``n`` items, to wrap already-packed items."""
    if n < 16:
        return bytes((0x90 | n,))
    if n < 0x10000:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


def check_decoded(value: Any, limits: Limits = LIMITS) -> Any:
    """Apply the frame limits to a value a transport already parsed (Socket.IO JSON).

    Depth first: the size is measured on a re-encoding, and orjson refuses to
    encode nesting past 255 (a TypeError that once became ``internal``).
    """
    _check_depth(value, limits.max_depth)
    try:
        encoded = orjson.dumps(value)
    except orjson.JSONEncodeError as exc:  # e.g. an integer beyond 64 bits
        raise ProtocolError(ErrorCode.MALFORMED, f"not representable as JSON: {exc}") from exc
    _check_size(encoded, limits)
    return value


CODECS: dict[str, type[JsonCodec] | type[MsgpackCodec]] = {
    "json": JsonCodec,
    "msgpack": MsgpackCodec,
}


def codec_for(name: str, limits: Limits = LIMITS) -> Codec:
    """The codec registered under ``name``; unknown names are a typed error."""
    try:
        return CODECS[name](limits)
    except KeyError as exc:
        raise ProtocolError(ErrorCode.UNSUPPORTED_ENCODING) from exc
