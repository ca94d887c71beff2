"""mimeparse: the FeedParser's Message built from slices, and Part's header caches (the properties that compare it
with the FeedParser on generated mail are in test_properties.py)."""

from __future__ import annotations

from email.message import Message

import pytest

from ftsd.message import MimeTooComplex, _feed, parse_bytes
from ftsd.mimeparse import Part, parse_text


def _answers(msg: Message) -> object:
    return (msg.get("content-type"), "Content-Type" in msg, "x-new" in msg, msg.get_content_type(),
            msg.get_param("charset"), msg.get_params(), msg.get_filename(), msg.get_content_charset(),
            msg.get_boundary(), msg.get_default_type(), msg.items())


def test_part_caches_follow_every_change_of_the_headers() -> None:
    """Part answers what Message answers after each way of changing headers (its dict and parameter caches are
    dropped)."""
    head = ('Content-Type: text/plain; charset="latin-1"; name=a.txt\n'
            'Content-Disposition: attachment; filename="b.txt"\n\nbody\n')
    plain, fast = _feed(head, False), parse_text(head, Part)
    assert isinstance(fast, Part)
    steps = [
        lambda m: m.set_param("charset", "utf-8"),
        lambda m: m.replace_header("Content-Disposition", 'inline; filename="c.txt"'),
        lambda m: m.__setitem__("X-New", "1"),
        lambda m: m.set_type("multipart/mixed"),
        lambda m: m.set_boundary("zz"),
        lambda m: m.set_default_type("message/rfc822"),
        lambda m: m.__delitem__("Content-Type"),
        lambda m: m.set_raw("Content-Type", "text/html; charset=koi8-r"),
        lambda m: m.add_header("Content-Disposition", "attachment", filename="d.txt"),
        lambda m: m.del_param("charset"),
    ]
    reference = Message()
    for name, value in plain.items():
        reference.set_raw(name, value)
    assert _answers(fast) == _answers(reference)
    for msg in (fast, reference):  # what a caller does with the list it gets is not cached
        params = msg.get_params(unquote=False)
        assert params is not None
        params.append(("x", "y"))
    assert _answers(fast) == _answers(reference)
    for step in steps:
        step(fast)
        step(reference)
        assert _answers(fast) == _answers(reference)


def _nested(depth: int) -> bytes:
    head = b"".join(b"--b%d\nContent-Type: multipart/mixed; boundary=b%d\n\n" % (i, i + 1) for i in range(depth))
    tail = b"".join(b"--b%d--\n" % i for i in reversed(range(depth + 1)))
    return b"Content-Type: multipart/mixed; boundary=b0\n\n" + head + b"--b%d\n\nleaf\n" % depth + tail


def test_nesting_past_the_fast_path_goes_to_the_feedparser_and_its_limits() -> None:
    text = _nested(7).decode()
    fast = parse_text(text, Part)
    assert fast is not None and len(list(fast.walk())) == 9
    assert parse_text(_nested(20).decode(), Part) is None  # past mimeparse's depth: the FeedParser parses it
    assert len(list(parse_bytes(_nested(20)).walk())) == 22
    deep = parse_bytes(_nested(40))
    assert len(list(deep.walk())) == 42
    with pytest.raises(MimeTooComplex):
        parse_bytes(_nested(70))


def test_lone_cr_multipart_is_parsed_by_the_feedparser() -> None:
    raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\none\rtwo\r\n--b--\r\n"
    assert parse_text(raw.decode(), Part) is None
    msg = parse_bytes(raw)
    assert [p.get_payload() for p in msg.get_payload() if isinstance(p, Message)] == ["one\rtwo"]


def _many_multiparts(outer: str, n: int) -> str:
    """A multipart holding `n` multiparts, each with its own boundary, inside one with boundary `outer`."""
    inner = "".join(f'--m\nContent-Type: multipart/mixed; boundary="c{i}"\n\n--c{i}\n\nx\n--c{i}--\n'
                    for i in range(n))
    return (f'Subject: s\nContent-Type: multipart/mixed; boundary="{outer}"\n\n--{outer}\n'
            f'Content-Type: multipart/mixed; boundary="m"\n\n{inner}--m--\n--{outer}--\n')


def test_crafted_boundaries_go_to_the_feedparser() -> None:
    """Each level's boundary pattern holds the enclosing boundaries (compiled by re, in Python): a boundary over RFC
    2046's 70 characters, or more boundary characters than the fast path compiles per message, go to the
    FeedParser, which reads them line by line (a 58 KB message of 400 multiparts in one with a 10,000-character
    boundary took the fast path ~10 s before these bounds)."""
    assert parse_text(_many_multiparts("A" * 60, 20), Part) is not None
    assert parse_text(_many_multiparts("A" * 71, 20), Part) is None
    assert parse_text(_many_multiparts("A" * 60, 400), Part) is None
    for text in (_many_multiparts("A" * 10_000, 400), _many_multiparts("A" * 60, 400)):
        msg = parse_bytes(text.encode())
        assert len(list(msg.walk())) == 2 + 2 * 400
