"""Properties that must hold for any input, checked with Hypothesis: decoding and parsing are total (hostile input
is normal input), and modified UTF-7 folder names round-trip."""

from __future__ import annotations

import base64
import quopri
import re
from email.message import Message
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ftsd.decoders.charset import decode_text
from ftsd.decoders.html import _stream_text, html_to_text
from ftsd.maildir import decode_mutf7, encode_mutf7
from ftsd.message import _feed, _payload_head, decode_header_value, parse_bytes, parse_message, split_base64
from ftsd.mimeparse import parse_text
from ftsd.settings import Settings

SETTINGS = Settings()
QUICK = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

charsets = st.one_of(
    st.none(),
    st.sampled_from(["utf-8", "latin-1", "iso-8859-15", "gb2312", "big5", "shift_jis", "koi8-r", "utf-16",
                     "unknown-8bit", "utf-7", "x-unknown", "ks_c_5601-1987", "", "undefined", "idna", "base64",
                     "rot13", "zlib", "punycode"]),
    st.text(max_size=20),  # anything a sender may write into charset=, NUL and friends included
)


@QUICK
@given(st.binary(max_size=2000), charsets)
def test_decode_text_is_total(data: bytes, charset: str | None) -> None:
    assert isinstance(decode_text(data, charset), str)


@pytest.mark.parametrize("label", ["UNDEFINED", "idna", "punycode", "base64", "hex", "rot13", "zlib", "bz2", "uu",
                                   "quopri"])
def test_codecs_that_are_no_charsets_never_fail_a_message(label: str) -> None:
    # Python knows these names, but "undefined" and "idna" refuse any bytes and the rest map bytes to bytes
    data = b"caf\xc3\xa9 \x00\xff"
    assert decode_text(data, label) == data.decode("windows-1252", "replace")  # as an unknown label
    assert decode_header_value(f"=?{label}?q?caf=C3=A9?= x") == "café x"


@QUICK
@given(st.text(max_size=200))
def test_header_decoding_is_total(value: str) -> None:
    assert isinstance(decode_header_value(value), str)


@QUICK
@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=60))
def test_modified_utf7_round_trips(name: str) -> None:
    encoded = encode_mutf7(name)
    assert encoded.isascii() and all(0x20 <= ord(c) <= 0x7E for c in encoded)
    assert decode_mutf7(encoded) == name


@QUICK
@given(st.text(max_size=2000))
def test_html_to_text_is_total(markup: str) -> None:
    assert isinstance(html_to_text(markup), str)


@QUICK
@given(st.text(alphabet="abcdefghij XYZ0123456789.,", min_size=1, max_size=200))
def test_plain_text_survives_html_to_text(text: str) -> None:
    """Text without markup keeps its words (a tagless body sent as text/html)."""
    assert html_to_text(text).split() == text.split()


# Markup of real mail's kind: nested block and inline elements, hidden ones, raw-text ones, entities, comments.
_TAGS = ["p", "div", "span", "b", "font", "a", "td", "tr", "table", "li", "ul", "h1", "blockquote", "center", "pre",
         "script", "style", "noscript", "iframe", "textarea", "form", "select", "option"]
_LEAVES = st.sampled_from(["alpha", "beta", "x", "&amp;", "caf&eacute;", "1&lt;2", " ", "\n", "q&quot;", "<br>",
                           "<img alt='pic'>", "<!-- c -->", "</p>", "</td>"])
_MARKUP = st.recursive(_LEAVES, lambda kids: st.builds(
    lambda tag, inner, attr: f"<{tag}{attr}>{''.join(inner)}</{tag}>",
    st.sampled_from(_TAGS), st.lists(kids, max_size=4), st.sampled_from(["", " class=x", " title='t&amp;u'"])),
    max_leaves=30)


@QUICK
@given(st.lists(_MARKUP, max_size=5))
def test_html_to_text_gives_the_words_of_the_event_stream(parts: list[str]) -> None:
    """libxml2's tree walk and the stdlib event stream (the fallback past libxml2's depth) give the same words,
    but where a script or style opens inside a raw-text element (below: there the walk gives what a browser does)."""
    markup = "".join(parts)
    assume(not _SCRIPT_IN_RAW_TEXT.search(markup))
    assert html_to_text(markup).split() == _stream_text(markup).split()


_SCRIPT_IN_RAW_TEXT = re.compile(r"<(iframe|textarea)\b[^>]*>(?:(?!</\1>).)*<(?:script|style)\b", re.S)


def test_a_script_opened_inside_a_raw_text_element_ends_with_it() -> None:
    """HTML5: an iframe's content is raw text up to the first </iframe>, so a `<script>` in it hides nothing after
    that end tag (found by the property above: the event stream, which knows no raw-text iframe, hid "alpha")."""
    markup = "<iframe><script><iframe></iframe>alpha</script></iframe> beta"
    assert html_to_text(markup).split() == ["alpha", "beta"]
    assert _stream_text(markup).split() == ["beta"]


_HEADER_LINES = st.lists(st.sampled_from([
    b"Subject: =?utf-8?q?caf=C3=A9?=", b"Subject: =?utf\x00-8?Q?x?=", b"From: a@b.c", b"To: <x@y>, z",
    b"Content-Type: text/plain; charset=\"utf\x00-8\"", b"Content-Type: multipart/mixed; boundary=b",
    b"Content-Type: text/html", b"Content-Transfer-Encoding: base64", b"Content-Transfer-Encoding: quoted-printable",
    b"Content-Type: message/rfc822", b"X-Junk: \xff\xfe\x00", b" folded continuation", b"no colon here",
]), max_size=8)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_HEADER_LINES, st.binary(max_size=3000), st.integers(0, 60))
def test_parse_message_is_total(headers: list[bytes], body: bytes, nesting: int) -> None:
    """Whatever the bytes -- broken headers, NULs in charsets, deep multipart nesting -- parsing gives fields."""
    nested = b"".join(b"--b\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" for _ in range(nesting))
    raw = b"\r\n".join(headers) + b"\r\n\r\n" + nested + body
    parsed = parse_message(raw, SETTINGS)
    assert isinstance(parsed.body, str) and isinstance(parsed.headers, str)


def _shape(msg: Message) -> object:
    payload = msg._payload  # type: ignore[attr-defined]  # as stored: get_payload() decodes (and may raise)
    return (msg.items(), msg.get_unixfrom(), msg.preamble, msg.epilogue, [type(d) for d in msg.defects],
            msg.get_default_type(), [_shape(p) for p in payload] if isinstance(payload, list) else payload)


_LINE_ENDS = st.sampled_from([b"\n", b"\r\n", b"\r"])


@QUICK
@given(_HEADER_LINES, st.lists(st.tuples(_LINE_ENDS, st.sampled_from([b"", b"x", b"From me", b"Subject: in body",
                                                                       b"--b", b" lead", b"\xff"])), max_size=6),
       _LINE_ENDS, st.booleans())
def test_single_part_fast_path_parses_like_the_feedparser(headers, body, end, from_line):
    """A message's body set as one slice gives the same Message as the FeedParser reading it line by line."""
    head = ([b"From sender Mon Jan 1 00:00:00 2024"] if from_line else []) + headers
    raw = end.join(head) + end + end + b"".join(line + e for e, line in body)
    assert _shape(parse_bytes(raw)) == _shape(_feed(raw.decode("ascii", "surrogateescape"), False))


_PART_LINES = st.sampled_from([b"", b"text", b"Content-Type: text/plain", b"Content-Type: text/html; charset=utf-8",
                                b"Content-Type: multipart/alternative; boundary=in", b"Content-Type: message/rfc822",
                                b"Content-Type: multipart/digest; boundary=in", b"--out", b"--out--", b"--in",
                                b"--in--  ", b"--in-- x", b"--outer", b"From me", b" folded", b"X-B: --in",
                                b"Content-Transfer-Encoding: base64", b"\xff\xfe", b"--in:x", b":no name"])


def _render(tree: Any, boundary: bytes, depth: int = 0) -> list[bytes]:
    """Lines of a MIME entity: a leaf is a list of body lines, a multipart a (preamble, parts, epilogue, close)."""
    if isinstance(tree, list):
        return [b"Content-Type: text/plain", b"", *tree]
    preamble: list[bytes]
    epilogue: list[bytes]
    preamble, parts, epilogue, close = tree
    inner = boundary + b"-%d" % depth if depth % 2 else b"in"
    lines = [b"Content-Type: multipart/mixed; boundary=\"" + inner + b"\"", b"", *preamble]
    for part in parts:
        lines += [b"--" + inner, *_render(part, boundary, depth + 1)]
    return lines + ([b"--" + inner + b"--"] if close else []) + epilogue


_LINES = st.lists(_PART_LINES, max_size=3)
_TREES = st.recursive(_LINES, lambda sub: st.tuples(_LINES, st.lists(sub, min_size=1, max_size=3), _LINES,
                                                    st.booleans() | st.just(True)), max_leaves=8)


@QUICK
@given(_TREES, st.sampled_from([b"out", b"in", b"o-u+t", b""]), st.sampled_from([b"\n", b"\r\n"]),
       st.lists(st.tuples(st.integers(0, 60), _PART_LINES, _LINE_ENDS), max_size=2), st.booleans(), st.booleans())
def test_multipart_fast_path_parses_like_the_feedparser(tree, boundary, end, noise, from_line, headersonly):
    """Multipart messages cut at their boundary lines give the FeedParser's Message: nesting, preambles and
    epilogues, missing or doubled boundaries, boundary-like header lines, mixed line endings."""
    lines = ([b"From sender Mon Jan 1 00:00:00 2024"] if from_line else []) + [b"Subject: s"] + _render(
        ([], [tree], [], True), boundary)
    for at, line, line_end in noise:
        lines.insert(min(at, len(lines)), line + (line_end if line_end != end else b""))
    raw = end.join(lines) + end
    assert _shape(parse_bytes(raw, headersonly)) == _shape(_feed(raw.decode("ascii", "surrogateescape"), headersonly))


def test_multipart_fast_path_takes_plain_nesting() -> None:
    """The shapes of real mail are parsed by mimeparse itself (not handed to the FeedParser), like the FeedParser."""
    raw = (b"Subject: s\r\nContent-Type: multipart/mixed; boundary=out\r\n\r\npre\r\n--out\r\n"
           b"Content-Type: multipart/alternative; boundary=in\r\n\r\n--in\r\n\r\nplain\r\n--in\r\n"
           b"Content-Type: text/html\r\n\r\n<p>x</p>\r\n--in--\r\nin-epilogue\r\n--out\r\n"
           b"Content-Type: image/png\r\n\r\niVBORw0KGgo=\r\n--out--\r\nepilogue\r\n")
    text = raw.decode("ascii", "surrogateescape")
    fast = parse_text(text, Message)
    assert fast is not None and _shape(fast) == _shape(_feed(text, False))
    assert [p.get_content_type() for p in fast.walk()] == ["multipart/mixed", "multipart/alternative", "text/plain",
                                                          "text/html", "image/png"]


_BASE64_LINE = re.compile(rb"[A-Za-z0-9+/]*(=*)")


@QUICK
@given(st.lists(st.sampled_from([b"QUJD", b"ab", b"=", b"==", b" ", b"\t", b"\r", b"\n", b"\r\n", b"x-y", b"\x0b",
                                 b"!", b"+/"]), max_size=30))
def test_split_base64_is_the_line_rule(chunks: list[bytes]) -> None:
    """The one-match split_base64 keeps the lines the rule keeps: base64 characters (or none) between white
    space, up to and including the first line with padding."""
    payload = b"".join(chunks)
    end = 0
    for line in payload.splitlines(keepends=True):
        m = _BASE64_LINE.fullmatch(line.strip())
        if m is None:
            break
        end += len(line)
        if m.group(1):
            break
    assert split_base64(payload) == (payload[:end], payload[end:])


@QUICK
@given(st.binary(max_size=400), st.sampled_from(["base64", "quoted-printable", "7bit", "Base64", "x-uuencode"]),
       st.integers(1, 120))
def test_payload_head_is_the_start_of_the_decoded_body(data: bytes, cte: str, width: int) -> None:
    if cte.lower() == "base64":
        encoded = base64.b64encode(data)
        text = b"\r\n".join(encoded[i:i + width] for i in range(0, len(encoded), width)).decode()
    elif cte == "quoted-printable":
        text = quopri.encodestring(data).decode()
    else:
        text = data.decode("latin-1").encode("ascii", "replace").decode()
    part = Message()
    part["Content-Transfer-Encoding"] = cte
    part.set_payload(text)
    head = _payload_head(part)
    full = part.get_payload(decode=True)
    assert isinstance(full, bytes)
    assert head is None or head == full[:64]
    if cte in ("base64", "7bit"):
        assert head is not None or len(text) > 128  # only long bodies with many line breaks need the whole body


# The query languages: any text is a query or one QueryError (a 400 naming the problem), never another exception.
_IMAP_PIECES = st.sampled_from(['TEXT', 'BODY', 'SUBJECT', 'HEADER', 'X-Spam', 'OR', 'NOT', 'ALL', 'CHARSET',
                                'UTF-8', '(', ')', '"', '\\', '{', '}', '+', '\r\n', ' ', '{3}', '{3+}\r\n',
                                '{99999999999}', '*', '1:5', '\u00b2', '\u0663', '\x00', '\ud800', 'caf\u00e9'])
_LUCENE_PIECES = st.sampled_from(['body:', 'hdr:', 'subject:', 'uid:', 'box:', 'user:', 'id:', 'AND', 'OR', 'NOT',
                                  '&&', '||', '!', '(', ')', '"', '\\', '*', '?', '~', '^', '2', '+', '-', ':', ' ',
                                  '{!lucene q.op=AND}', '[', ']', 'TO', '{', '}', '/', '\u00b2', '\x00', '\ud800',
                                  'caf\u00e9'])


@QUICK
@given(st.lists(st.one_of(_IMAP_PIECES, st.text(max_size=8)), max_size=30))
def test_any_imap_query_text_parses_or_is_a_query_error(pieces: list[str]) -> None:
    from ftsd.errors import QueryError
    from ftsd.query import parse_argv, parse_query

    for parse in (lambda: parse_query("".join(pieces)), lambda: parse_argv(pieces)):
        try:
            parse()
        except QueryError:
            pass


@QUICK
@given(st.lists(st.one_of(_LUCENE_PIECES, st.text(max_size=8)), max_size=30))
def test_any_lucene_query_text_parses_or_is_a_query_error(pieces: list[str]) -> None:
    from ftsd.errors import QueryError
    from ftsd.solr.lucene import parse_lucene

    for op in ("OR", "AND"):
        try:
            parse_lucene("".join(pieces), op)
        except QueryError:
            pass
