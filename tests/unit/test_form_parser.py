"""protocol.parse_form: WHATWG's application/x-www-form-urlencoded rules, strict where guessing is unsafe (§9)."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from htouhui.protocol import MalformedMessage, parse_form


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        ("a=1&b=2", {"a": "1", "b": "2"}),
        ("a=1&b=2&", {"a": "1", "b": "2"}),  # a trailing & (empty sequence)
        ("&a=1&&b=2&&", {"a": "1", "b": "2"}),  # leading, doubled and trailing empty sequences
        ("a=1&b=", {"a": "1", "b": ""}),  # name= is a field with an empty value
        ("a=1&b", {"a": "1", "b": ""}),  # a name alone too
        ("a=x+y&b=%2B", {"a": "x y", "b": "+"}),  # + is a space, %2B a plus
        ("a=1=2", {"a": "1=2"}),  # only the first = splits
        ("a=%e5%BC%A0", {"a": "张"}),  # escapes in either case
        ("a=张三&b=1", {"a": "张三", "b": "1"}),  # raw UTF-8 text, as some gateways send it
        ("a=1&b=2\r\n", {"a": "1", "b": "2"}),  # a trailing CR/LF after the body
        ("a=1\n", {"a": "1"}),
        ("", {}),
        ("&", {}),
        ("a=1;b=2", {"a": "1;b=2"}),  # ; is not a separator (WHATWG)
        ("n%61me=v", {"name": "v"}),  # names are decoded like values
    ],
)
def test_what_browsers_parse_is_parsed_the_same(text: str, fields: dict[str, str]) -> None:
    assert parse_form(text) == fields


@pytest.mark.parametrize(
    ("text", "rule", "field"),
    [
        ("a=1&a=2", "repeated_name", "a"),
        ("a=1&a=1", "repeated_name", "a"),  # even with the same value: which one was signed?
        ("a=1&a", "repeated_name", "a"),
        ("a=%G1", "bad_percent_escape", "a"),
        ("a=%4", "bad_percent_escape", "a"),
        ("a=100%", "bad_percent_escape", "a"),
        ("%zz=1", "bad_percent_escape", "name"),
        ("a=%FF%FE", "bad_utf8", "a"),
        ("a=%C3", "bad_utf8", "a"),  # a truncated sequence
        ("=1", "empty_name", "body"),
        ("a=1&=", "empty_name", "body"),
    ],
)
def test_what_cannot_be_read_unambiguously_is_malformed(text: str, rule: str, field: str) -> None:
    with pytest.raises(MalformedMessage) as caught:
        parse_form(text)
    assert (caught.value.rule, caught.value.field) == (rule, field)


def test_a_malformed_field_is_named_only_when_its_name_is_plain() -> None:
    with pytest.raises(MalformedMessage) as caught:
        parse_form("a b=1&a b=2")
    assert caught.value.field == "unnamed" and "a b" not in str(caught.value)


_name = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=12)
_value = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)


@settings(max_examples=200, deadline=None, database=None)
@given(fields=st.dictionaries(_name, _value, max_size=8), empties=st.integers(0, 3), crlf=st.booleans())
def test_any_form_a_browser_writes_reads_back(fields: dict[str, str], empties: int, crlf: bool) -> None:
    text = urlencode(fields) + "&" * empties + ("\r\n" if crlf else "")
    assert parse_form(text) == fields
