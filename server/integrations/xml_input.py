"""Untrusted XML in: parsed by defusedxml, never by a parser that expands entities.

A CAP alert or a CoT event arrives from a bot over HTTP. The XML attacks
that matter here are all carried by a DTD: external entities (XXE: a file or
URL read into the document), entity expansion (the billion laughs: a few
hundred bytes that grow to gigabytes) and DTD retrieval. Neither standard
uses a DTD, so a document that has one is refused whole (``forbid_dtd``),
before any entity is declared, let alone expanded.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element, ParseError

import defusedxml
import defusedxml.ElementTree as DefusedET

from protocol.errors import ErrorCode, ProtocolError

#: Nesting a document may have: CAP needs 5 levels, CoT a few more in
#: ``<detail>``; deeper is an attack on the recursion of whoever walks it.
MAX_DEPTH = 32


def parse_xml(raw: bytes, what: str) -> Element:
    """The root element of ``raw``; ProtocolError ``malformed`` for anything else.

    ``what`` names the expected document in the error ("a CAP alert").
    """
    try:
        root = DefusedET.fromstring(raw, forbid_dtd=True)
    except defusedxml.DefusedXmlException as exc:
        raise ProtocolError(
            ErrorCode.MALFORMED,
            f"{what}: XML with a DTD or entity declarations is refused ({type(exc).__name__})",
        ) from exc
    except (ParseError, ValueError) as exc:
        raise ProtocolError(ErrorCode.MALFORMED, f"{what}: not well-formed XML: {exc}") from exc
    if _depth(root) > MAX_DEPTH:
        raise ProtocolError(ErrorCode.MALFORMED, f"{what}: nested deeper than {MAX_DEPTH}")
    return root


def _depth(root: Element) -> int:
    """The element depth, iteratively (a recursive walk is what deep nesting attacks)."""
    deepest, stack = 0, [(root, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth <= MAX_DEPTH:
            stack.extend((child, depth + 1) for child in node)
    return deepest
