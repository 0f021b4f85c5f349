"""What text search reads of an event, how it cuts words, and its snippets.

Pure and shared by both storage backends and the search service, so a word
the index stored is the word a query asks for, and the service can re-check
a candidate against exactly the text the reader was given:

* ``index_terms(kind, body)``: the distinct words a stored event is indexed
  under, from the top-level text fields of its body only (``SEARCHED``).
  Protected fields (a subject's name, date of birth, phone, address; a
  position) are nested objects and never indexed, so a redaction can never
  hide the word that made an event match.
* ``parse_query(q)``: the words of a query (every one must match), or a
  typed ``invalid`` error. No operators, phrases or prefixes: what a user
  types is words, never FTS5 syntax.
* ``matches(terms, body)`` and ``snippet(terms, body)``: over the body the
  reader was given (after ``audience.redact_body``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from protocol.errors import ErrorCode, ProtocolError

#: Top-level body fields that hold words people write (messages, tasks,
#: incident headers, notes on status and task changes).
SEARCHED = ("title", "text", "details", "description", "note")

#: A word: letters and digits (any script); everything else separates words,
#: as SQLite FTS5's ``unicode61`` tokenizer does (the underscore too).
_WORD = re.compile(r"[^\W_]+")

#: Longest word indexed or asked for: longer ones are cut to this.
MAX_TERM_CHARS = 64
#: Distinct words indexed per event: past that, an event is not found by the
#: rest (a 8,000-character message has about 1,300 words, most repeated).
MAX_TERMS_PER_EVENT = 512
#: Words per query, and characters of the query string.
MAX_QUERY_TERMS = 8
MAX_QUERY_CHARS = 200
#: Characters of a snippet around the first matched word.
SNIPPET_CHARS = 160


def words(text: str) -> list[str]:
    """``text``'s words, lower-cased and cut to ``MAX_TERM_CHARS``, in order."""
    return [w[:MAX_TERM_CHARS] for w in _WORD.findall(text.lower())]


def searched_text(body: Mapping[str, Any]) -> list[str]:
    """The searched fields' strings, in ``SEARCHED`` order."""
    return [v for k in SEARCHED if isinstance(v := body.get(k), str) and v]


def index_terms(body: Mapping[str, Any]) -> list[str]:
    """The distinct words a stored event is indexed under (at most ``MAX_TERMS_PER_EVENT``)."""
    seen: dict[str, None] = {}
    for text in searched_text(body):
        for word in words(text):
            seen.setdefault(word, None)
            if len(seen) >= MAX_TERMS_PER_EVENT:
                return list(seen)
    return list(seen)


def _invalid(why: str, reason: str) -> ProtocolError:
    return ProtocolError(ErrorCode.INVALID, f"q: {why}", {"field": "q", "reason": reason})


def parse_query(q: str | None) -> list[str]:
    """The distinct words of a query; ``invalid`` with a stable ``reason`` otherwise:

    ``missing`` (no ``q``), ``too_long``, ``no_words`` (nothing searchable),
    ``too_many_words``.
    """
    if q is None:
        raise _invalid("is required", "missing")
    if len(q) > MAX_QUERY_CHARS:
        raise _invalid(f"longer than {MAX_QUERY_CHARS} characters", "too_long")
    terms = list(dict.fromkeys(words(q)))
    if not terms:
        raise _invalid("has no word to search for (letters or digits)", "no_words")
    if len(terms) > MAX_QUERY_TERMS:
        raise _invalid(f"more than {MAX_QUERY_TERMS} words", "too_many_words")
    return terms


def matches(terms: Sequence[str], body: Mapping[str, Any]) -> bool:
    """Whether every term is a word of ``body``'s searched text (as the index cut it)."""
    return set(terms) <= set(index_terms(body))


def snippet(terms: Sequence[str], body: Mapping[str, Any]) -> str:
    """About ``SNIPPET_CHARS`` of the first searched field holding a term, around it."""
    wanted = set(terms)
    for text in searched_text(body):
        for found in _WORD.finditer(text):
            if found.group().lower()[:MAX_TERM_CHARS] in wanted:
                return _around(text, found.start(), found.end())
    return ""


def _around(text: str, start: int, end: int) -> str:
    if len(text) <= SNIPPET_CHARS:
        return text
    lead = max(0, min(start - SNIPPET_CHARS // 3, len(text) - SNIPPET_CHARS))
    cut = text[lead : lead + SNIPPET_CHARS]
    return ("…" if lead else "") + cut + ("…" if lead + SNIPPET_CHARS < len(text) else "")
