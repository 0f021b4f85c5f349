"""Limits every peer enforces; the server announces them in ``welcome``."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Limits:
    """Documented limits of protocol v1 (see SPEC.md, "Limits")."""

    #: A command frame, encoded, in bytes. Checked before decoding anything.
    max_frame_bytes: int = 64 * 1024
    #: Message text and notes, in characters.
    max_text_chars: int = 8_000
    #: Titles, categories, addresses, reasons.
    max_short_chars: int = 300
    #: Client action ids (``id``) and object ids.
    max_id_chars: int = 64
    #: Entries in any list (mentions, organisations, follow requests...).
    max_list_items: int = 100
    #: Nesting depth of a decoded frame.
    max_depth: int = 8
    #: Events in one timeline page.
    max_page: int = 1_000

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)


LIMITS = Limits()
