"""Numbers other people wrote (uidlists, Solr ids, userdb fields, XLSX cells): ASCII digits or no number."""

from hypothesis import given
from hypothesis import strategies as st

from ftsd.digits import UID_MAX, ascii_int, parse_uid


@given(st.text(max_size=30))
def test_any_text_is_a_number_only_in_ascii_digits(text: str) -> None:
    value = ascii_int(text)
    if text and len(text) <= 20 and all("0" <= c <= "9" for c in text):
        assert value == int(text)
    else:
        assert value is None


def test_what_isdigit_accepts_and_int_refuses_is_no_number() -> None:
    for text in ("²", "1²", "٣", "߀", "", " 1", "+1", "-1", "1_000", "9" * 5000):
        assert ascii_int(text) is None, text
        assert parse_uid(text) is None, text


def test_uids_are_32_bit_and_not_zero() -> None:
    assert parse_uid("1") == 1 and parse_uid(str(UID_MAX)) == UID_MAX == 4294967295
    assert parse_uid("0") is None and parse_uid(str(UID_MAX + 1)) is None and parse_uid("00000000001") is None
    assert parse_uid("0000000001") == 1
