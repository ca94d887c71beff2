"""Decoding rules that Dovecot's own search follows, on fixtures: ftsd and the brute-force reference
(tests/reference.py, which learns each rule independently) must both give the expected UIDs.

* RFC 2047 §6.2: white space is dropped only between two adjacent encoded words; the (folded) space between an
  encoded word and clear text stays.
* A base64 text part followed by clear text (a footer appended by a list server): the data is decoded and the
  footer read as text.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from ftsd import service
from ftsd.message import decode_header_value, parse_message
from ftsd.query import parse_query
from ftsd.settings import Settings, load_settings
from tests.maildirs import MailDir
from tests.reference import ReferenceIndex, decode_message

USER = "alice@example.org"

FOLDED = (
    b"From: =?utf-8?q?Br=C3=A4ndli_via_USRP-users?=\n <usrp-users@lists.ettus.com>\n"
    b"To: =?iso-8859-1?q?J=FCrg_M=FCller?=\n\t<jurg@example.org>, =?utf-8?b?w4VzYQ==?= <asa@example.org>\n"
    b"Subject: =?utf-8?q?Re:_[USRP-users]_B210?=\n timing =?utf-8?q?gr=C3=BC?=\n =?utf-8?q?ezi?= mitenand\n"
    b"Message-ID: <folded@example.org>\n\nplain body\n"
)
# Two encoded words in one charset that split a UTF-8 character: decoded together.
SPLIT = b"Subject: =?utf-8?q?caf=C3?= =?utf-8?q?=A9_cr=C3=A8me?=\nFrom: x@example.org\n\nbody\n"
FOOTER = (b"\n_______________________________________________\nwebmake-talk mailing list\n"
          b"webmake-talk@lists.sourceforge.net\n")


def _base64_part(ctype: str, text: str, footer: bytes) -> bytes:
    data = base64.encodebytes(text.encode("utf-8"))
    return (f"From: spam@example.org\nSubject: b64\nContent-Type: {ctype}; charset=utf-8\n"
            "Content-Transfer-Encoding: base64\n\n").encode() + data + footer


B64_PLAIN = _base64_part("text/plain", "Degerli SMSTR kullanicimiz, yeni bir program hazirladik.\n", FOOTER)
B64_HTML = _base64_part("text/html", "<html><body><p>Programi <b>indirebilirsiniz</b> &amp; "
                        "kontrol</p></body></html>\n", b"\n\n" + FOOTER)
# "abc" then "ab" without its padding, then clear text
B64_PLAIN_ODD = _base64_part("text/plain", "", b"YWJj\nYWI\nnot base64: trailer words\n")
B64_CLEAN = _base64_part("text/plain", "perfectly ordinary base64 body\n", b"")

MESSAGES = [FOLDED, SPLIT, B64_PLAIN, B64_HTML, B64_PLAIN_ODD, B64_CLEAN]

# key -> UIDs (1-based positions in MESSAGES)
EXPECTED = {
    'FROM "Brändli via USRP-users <usrp"': [1],
    'FROM "brandli via usrp-users <usrp-users@lists.ettus.com>"': [1],
    'FROM "USRP-users<usrp"': [],
    'TO "Jürg Müller <jurg@"': [1],
    'TO "Åsa <asa"': [1],
    'SUBJECT "B210 timing grüezi mitenand"': [1],
    'SUBJECT "grü ezi"': [],
    'HEADER Subject "[usrp-users] b210 timing"': [1],
    'TEXT "From: Brändli via USRP-users <usrp-users"': [1],
    'SUBJECT "café crème"': [2],
    "BODY kullanicimiz": [3],
    'BODY "yeni bir program"': [3],
    'BODY "webmake-talk mailing list"': [3, 4],
    "BODY indirebilirsiniz": [4],
    'BODY "indirebilirsiniz & kontrol"': [4],
    "BODY html": [],  # the HTML part is read as visible text, the footer has no tags
    "BODY abcab": [5],
    'BODY "trailer words"': [5],
    'BODY "ordinary base64 body"': [6],
    "BODY ZGVnZXJsaQ": [],  # nothing of the encoded data is left as text
    'BODY "lists.sourceforge.net"': [3, 4],
}


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Path]:
    tmp = tmp_path_factory.mktemp("exact")
    md = MailDir(tmp / "vmail" / "example.org" / "alice")
    for raw in MESSAGES:
        md.deliver(raw=raw)
    cfg = tmp / "ftsd.toml"
    cfg.write_text(f'mail_location = "maildir:{tmp}/vmail/%d/%n:INDEX={tmp}/index/%d/%n"\n'
                   f'[userdb]\ndriver = "static"\n[server]\nsocket = "{tmp}/s.sock"\nstate_dir = "{tmp}/state"\n')
    settings = load_settings(cfg)
    report = service.index_users(settings, [USER])
    assert report.failed == []
    return settings, md.root


def test_header_white_space_rfc2047():
    assert decode_header_value("=?utf-8?q?a?=\r\n <x@y>") == "a <x@y>"
    assert decode_header_value("=?utf-8?q?a?=\r\n =?utf-8?q?b?=") == "ab"
    assert decode_header_value("x =?utf-8?q?a?=  y") == "x a  y"
    assert decode_header_value("=?utf-8?q?a?= =?iso-8859-1?q?=E9?=") == "aé"
    assert decode_header_value("=?utf-8?b?!!?=") == ""  # undecodable data costs only itself
    parsed = parse_message(FOLDED, Settings())
    assert parsed.from_ == "Brändli via USRP-users <usrp-users@lists.ettus.com>"
    assert parsed.to.startswith("Jürg Müller\t<jurg@example.org>, Åsa <")
    assert parsed.subject == "Re: [USRP-users] B210 timing grüezi mitenand"
    ref = decode_message(FOLDED).fields
    assert ref["from"] == "brandli via usrp-users <usrp-users@lists.ettus.com>"
    assert ref["subject"] == "re: [usrp-users] b210 timing gruezi mitenand"


def test_base64_part_with_footer():
    body = parse_message(B64_PLAIN, Settings()).body
    assert "kullanicimiz" in body and "webmake-talk mailing list" in body
    body = parse_message(B64_HTML, Settings()).body
    assert "indirebilirsiniz & kontrol" in body and "<html>" not in body and "mailing list" in body
    assert "kullanicimiz" in decode_message(B64_PLAIN).fields["body"]
    hostile = b'Content-Type: text/plain; charset="utf\x00-8"\nContent-Transfer-Encoding: base64\n\n\x80YWJj\n'
    assert isinstance(parse_message(hostile, Settings()).body, str)  # the raw payload cannot even be read


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_ftsd_and_reference(indexed: tuple[Settings, Path], key: str):
    settings, root = indexed
    node = parse_query(key)
    got = service.search(settings, USER, ["INBOX"], node, autoindex=False)[0].uids
    assert ReferenceIndex(root).search("INBOX", node) == EXPECTED[key], "the reference"
    assert got == EXPECTED[key], "ftsd"
