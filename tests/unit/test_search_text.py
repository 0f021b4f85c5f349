"""The words search indexes and asks for (server/domain/search_text.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.errors import ErrorCode, ProtocolError
from server.domain.search_text import (
    MAX_QUERY_TERMS,
    MAX_TERM_CHARS,
    index_terms,
    matches,
    parse_query,
    snippet,
)


def test_words_are_letters_and_digits_lower_cased_from_text_fields_only() -> None:
    body = {
        "text": "Man on the BRIDGE_north, café 12-B",
        "subject": {"name": "Kestrel"},
        "title": "Bridge",
        "position": {"lat": 1.0},
    }
    assert index_terms(body) == ["bridge", "man", "on", "the", "north", "café", "12", "b"]
    assert matches(["bridge", "café"], body)
    assert not matches(["kestrel"], body)


@pytest.mark.parametrize(
    ("q", "reason"),
    [(None, "missing"), ("", "no_words"), ('"*(-', "no_words"), ("a" * 201, "too_long")],
)
def test_bad_queries_have_a_stable_reason(q: str | None, reason: str) -> None:
    with pytest.raises(ProtocolError) as refused:
        parse_query(q)
    assert refused.value.code is ErrorCode.INVALID
    assert refused.value.detail == {"field": "q", "reason": reason}


def test_too_many_words_and_operators_are_words() -> None:
    assert parse_query("a OR b NEAR(c) d*") == ["a", "or", "b", "near", "c", "d"]
    with pytest.raises(ProtocolError):
        parse_query(" ".join(f"w{i}" for i in range(MAX_QUERY_TERMS + 1)))


@settings(max_examples=200, derandomize=True, database=None)
@given(q=st.text(max_size=220), text=st.text(max_size=400))
def test_any_query_is_words_or_a_typed_refusal(q: str, text: str) -> None:
    refused: ErrorCode | None = None
    terms: list[str] = []
    try:
        terms = parse_query(q)
    except ProtocolError as err:
        refused = err.code
    if refused is not None:
        assert refused is ErrorCode.INVALID
        return
    assert 1 <= len(terms) <= MAX_QUERY_TERMS
    assert all(0 < len(t) <= MAX_TERM_CHARS for t in terms)
    body = {"text": text}
    if matches(terms, body):
        assert len(snippet(terms, body)) <= 162
