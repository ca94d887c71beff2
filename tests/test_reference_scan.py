"""Self-tests of the brute-force reference (tests/reference.py) on tiny hand-made messages: fast, no corpus."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ftsd.query import All, And, Key, Not, Or
from tests import reference
from tests.reference import (
    LONG_RUN_LIMIT,
    ReferenceIndex,
    decode_bytes,
    decoded_fields,
    header_text,
    html_visible_text,
    matches,
    normalise,
)


def msg(*header_lines: str, body: str | bytes = "hello\n", encoding: str = "latin-1") -> bytes:
    """A message from header lines and a body; 8-bit characters raw in `encoding`, as dirty mail has them."""
    head = "\r\n".join(header_lines).encode(encoding)
    return head + b"\r\n\r\n" + (body.encode(encoding) if isinstance(body, str) else body)


def search(raw: bytes, node: object) -> bool:
    return matches(reference.decode_message(raw).lookup(), node)


# --- normalise -------------------------------------------------------------------------------------------------


def test_normalise_folds_case_compatibility_and_accents() -> None:
    assert normalise("Fahrländer") == "fahrlander"
    assert normalise("FAHRLÄNDER") == normalise("fahrlander")
    assert normalise("Straße") == "strasse"
    assert normalise("ﬁnance ＡＢＣ ①") == "finance abc 1"
    assert normalise("e\u0301te\u0301") == normalise("été") == "ete"  # NFD input too
    assert normalise("ΣΟΦΟΣ") == normalise("σοφος") == "σοφοσ"  # full case folding, no final-sigma rule


def test_normalise_collapses_white_space_but_keeps_ends() -> None:
    assert normalise("a \t\r\n b\u00a0\u2003c") == "a b c"
    assert normalise("  x  ") == " x "
    assert normalise("") == ""


def test_normalise_is_idempotent() -> None:
    for s in ("Fahrländer", "İstanbul", "ǅemal", "ﬃ", "Ⅻ", "ｶﾞ", "x\u0345y"):
        assert normalise(normalise(s)) == normalise(s)


# --- headers ---------------------------------------------------------------------------------------------------


def test_rfc2047_subject_q_and_b() -> None:
    raw = msg(
        "Subject: =?iso-8859-1?q?Gr=FC=DFe_aus?= =?utf-8?B?TcO8bmNoZW4=?=",
        "From: =?ISO-8859-1?Q?Andr=E9_Fahrl=E4nder?= <andre@example.org>",
    )
    fields = decoded_fields(raw)
    assert fields["subject"] == "grusse ausmunchen"  # adjacent encoded words join without the space
    assert fields["from"] == "andre fahrlander <andre@example.org>"
    assert search(raw, Key("subject", "GRÜSSE")) and search(raw, Key("from", "Fahrländer"))
    assert search(raw, Key("from", "example.org")) and search(raw, Key("from", "andre@example.org"))


def test_address_comments_and_quoted_encoded_words_are_kept() -> None:
    raw = msg("From: jm@jmason.org (Justin =?iso-8859-1?q?M=E4son?=)", 'To: "=?utf-8?q?J=C3=B6rg?=" <j@x.de>')
    assert decoded_fields(raw)["from"] == "jm@jmason.org (justin mason)"
    assert search(raw, Key("to", "jörg"))


def test_repeated_header_joined_and_header_text() -> None:
    raw = msg("Received: from a by b", "Received: from c\r\n\tby d", "X-Mailer: Foo  Mail 1.0", "Subject: x")
    assert header_text(raw, "Received") == "from a by b from c by d"
    assert header_text(raw, "x-mailer") == "foo mail 1.0"
    assert header_text(raw, "X-Absent") == ""
    assert search(raw, Key("header", "mail 1", header="x-mailer"))
    assert not search(raw, Key("header", "mail", header="x-absent"))
    assert search(raw, Key("header", "", header="x-mailer"))
    assert not search(raw, Key("header", "", header="x-absent"))  # RFC 9051: HEADER name "" = has the header
    assert search(raw, Key("cc", ""))  # other empty keys match every message (design §4)


def test_eight_bit_and_bad_charset_headers() -> None:
    raw = msg("Subject: caf\xe9 \xa3100", "From: =?x-unknown?q?Ren=E9?= <r@x>")
    fields = decoded_fields(raw)
    assert fields["subject"] == "cafe £100"  # raw latin-1 byte: UTF-8 fails, windows-1252 decodes
    assert fields["from"] == "rene <r@x>"
    assert decoded_fields(msg("Subject: r\xc3\xa9sum\xc3\xa9"))["subject"] == "resume"  # raw UTF-8
    assert decoded_fields(msg("Subject: =?us-ascii?q?r=C3=A9sum=C3=A9?="))["subject"] == "resume"
    assert decoded_fields(msg("Subject: =?iso-8859-1?q?=C2=A3100?="))["subject"] == "£100"  # UTF-8 inside


def test_missing_headers_are_empty_fields() -> None:
    fields = decoded_fields(b"no header at all\n")
    assert set(reference.FIELDS) <= set(fields)
    assert fields["subject"] == fields["cc"] == fields["bcc"] == ""


# --- bodies ----------------------------------------------------------------------------------------------------


def test_quoted_printable_latin1_body() -> None:
    raw = msg(
        "Content-Type: text/plain; charset=iso-8859-1",
        "Content-Transfer-Encoding: quoted-printable",
        body="Gr=FC=DFe aus K=F6ln, so=\r\nft wrapped\r\n",
    )
    body = decoded_fields(raw)["body"]
    assert body == "grusse aus koln, soft wrapped "
    assert search(raw, Key("body", "Köln")) and search(raw, Key("body", "soft wr"))


def test_charset_fallbacks() -> None:
    assert decode_bytes("Köln".encode("cp1252"), "us-ascii") == "Köln"  # 8-bit in "ascii": cp1252
    assert decode_bytes("Köln".encode("latin-1"), "iso-8859-1") == "Köln"
    assert decode_bytes("Köln".encode(), "iso-8859-1") == "Köln"  # valid UTF-8 is UTF-8, whatever the label
    assert decode_bytes("Köln".encode("cp1252"), "koi8-r") == "KЖln"  # else the declared charset (0xF6: Ж)
    assert decode_bytes("Köln".encode(), "3Dutf-8") == "Köln"  # quoted-printable damage in the label
    assert decode_bytes("Köln".encode(), "default_charset") == "Köln"  # unknown label: UTF-8 first
    assert decode_bytes("中文".encode("gb2312"), "gb2312_charset") == "中文"
    assert decode_bytes("“quotes”".encode("cp1252"), None) == "“quotes”"
    assert decode_bytes(b"\x81\x8d", "bogus") == "\x81\x8d"  # not cp1252 either: latin-1
    assert decode_bytes("中文".encode("gbk"), "gb2312") == "中文"
    jis = "ファイルシステム上に".encode("iso-2022-jp")  # 7-bit: also valid UTF-8, but the label says otherwise
    assert decode_bytes(jis, "ISO-2022-JP") == decode_bytes(jis, None) == "ファイルシステム上に"
    assert decode_bytes(b"\xff\xfe", "utf-8") == "\ufffd\ufffd"  # declared codec, replacement characters
    assert decode_bytes(b"caf\xe9", "base64") == "café"  # not a text codec: like an unknown label


def test_undeclared_cjk_is_recognised() -> None:
    for text, codec in (
        ("不好意思打攪您！如果本廣告信對您產生困擾，在此深感抱歉", "big5"),
        ("第十一届中国国际电子设备、电子元器件、表面贴装展览会将于", "gb2312"),
        ("ももがはじけてぶどうがゆれるしじみとももの", "shift_jis"),
        ("안녕하세요 만나서 반갑습니다 감사합니다", "euc_kr"),
    ):
        assert decode_bytes(text.encode(codec), None) == text
        assert decode_bytes(text.encode(codec), "us-ascii") == text
    latin = "»»» Fahrländer «««  Größe ÄÖÜ ñ".encode("latin-1")  # paired high bytes, but not CJK
    assert reference.guess_cjk(latin) is None and decode_bytes(latin) == latin.decode("latin-1")
    raw = msg("Subject: [ILUG] " + "商業辦公室出租", encoding="big5", body="x")  # Big5 with '~' (0x7E) trail bytes
    assert decoded_fields(raw)["subject"] == "[ilug] 商業辦公室出租"
    korean = "(광고)신사업!!..원거리 감시 시스템"  # Hangul bytes are level-1 hanzi in Big5 and GB2312 too
    assert decoded_fields(msg("Subject: " + korean, encoding="euc_kr"))["subject"] == normalise(korean)


def test_undeclared_turkish() -> None:
    text = "YAPILMAYACAĞI İNTERNETTEN taşımaktadır güncelleme ’hâlâ’"
    assert decode_bytes(text.encode("cp1254"), None) == text
    assert decode_bytes("Þingvellir þjóðgarður".encode("cp1252"), None) == "Þingvellir þjóðgarður"  # Icelandic


def test_broken_base64_does_not_raise() -> None:
    raw = msg(
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: base64",
        body="aGVsbG8gd29ybGQ=\r\n!!!not base64 at all***\r\nZm9v\r\n",
    )
    fields = decoded_fields(raw)
    assert isinstance(fields["body"], str)


def test_html_visible_text() -> None:
    html = (
        "<html><head><title>Invisible title</title><style>p {color: red}</style></head><body>"
        "<script>var hidden = 'scripted';</script><p>Caf&eacute; &amp; Bar&nbsp;Menu</p>"
        "<table><tr><td>cell1</td><td>cell2</td></tr></table>Vi<!-- x -->agra <b>bo</b>ld"
        "<img src=x alt='Alt words'></body></html>"
    )
    text = normalise(html_visible_text(html))
    assert "cafe & bar menu" in text
    assert "viagra" in text and "bold" in text  # comments and inline tags do not split words
    assert "cell1 cell2" in text  # block elements do
    assert "alt words" in text
    for hidden in ("invisible", "color", "scripted", "<", "nbsp"):
        assert hidden not in text


def test_html_missing_or_misplaced_head() -> None:
    # as browsers do: body content ends an unclosed <head>; a <head> inside the body is ignored
    assert normalise(html_visible_text("<html><head><title>T</title><meta x=y><p>para</p>")) == " para "
    assert normalise(html_visible_text("<head><title>T</title>\nloose text")) == " loose text"
    newsletter = "<HTML><body bgcolor=x><HEAD> <TITLE>ZDNet</TITLE> <div>Announcements</div></body></HTML>"
    assert normalise(html_visible_text(newsletter)).split() == ["announcements"]


def test_html_part_in_multipart_alternative() -> None:
    raw = msg(
        'Content-Type: multipart/alternative; boundary="b"',
        body=(
            "--b\r\nContent-Type: text/plain\r\n\r\nplain version\r\n"
            "--b\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
            "<p>html <script>alert('x')</script>vers=C3=AFon</p>\r\n--b--\r\n"
        ),
    )
    fields = decoded_fields(raw)
    assert "plain version" in fields["body"] and "html version" in fields["body"]
    assert "alert" not in fields["body"]
    assert not search(raw, Key("body", "content-type"))  # MIME part headers are not text
    assert search(raw, Key("text", "multipart/alternative"))  # top-level headers are


def test_non_text_parts_are_skipped() -> None:
    raw = msg(
        'Content-Type: multipart/mixed; boundary="b"',
        body=(
            "--b\r\nContent-Type: text/plain\r\n\r\nvisible\r\n"
            "--b\r\nContent-Type: image/gif\r\nContent-Transfer-Encoding: base64\r\n\r\nR0lGODlhAQABAAAAACw=\r\n"
            "--b--\r\n"
        ),
    )
    assert decoded_fields(raw)["body"] == "visible"  # the line break before a boundary belongs to it


def test_attachment_file_names_are_body_text() -> None:
    raw = msg(
        'Content-Type: multipart/mixed; boundary="b"',
        body=(
            "--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
            '--b\r\nContent-Type: application/octet-stream; name="Yinxiang Motorcycles.doc"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n0M8R4KGxGuE=\r\n"
            "--b\r\nContent-Type: image/gif\r\n"
            "Content-Disposition: attachment; filename*=iso-8859-1''Gr%FC%DFe.gif\r\n\r\nR0lGODlh\r\n--b--\r\n"
        ),
    )
    assert reference.INDEX_PART_FILENAMES
    assert decoded_fields(raw)["body"] == "see attached yinxiang motorcycles.doc grusse.gif"
    assert search(raw, Key("body", "motorcycles.doc")) and search(raw, Key("text", "Grüße.gif"))


def test_nested_rfc822_headers_and_body() -> None:
    inner = "Subject: Inner =?utf-8?q?sujet_=C3=A9t=C3=A9?=\r\nFrom: Bob <bob@inner.example>\r\n\r\nforwarded body\r\n"
    raw = msg(
        "Subject: Fwd",
        'Content-Type: multipart/mixed; boundary="b"',
        body=f"--b\r\nContent-Type: text/plain\r\n\r\nsee below\r\n--b\r\nContent-Type: message/rfc822\r\n\r\n"
        f"{inner}--b--\r\n",
    )
    fields = decoded_fields(raw)
    assert "subject: inner sujet ete" in fields["body"] and "from: bob <bob@inner.example>" in fields["body"]
    assert "forwarded body" in fields["body"] and "see below" in fields["body"]
    assert fields["subject"] == "fwd"  # only the top-level header counts for SUBJECT
    assert not search(raw, Key("from", "bob")) and search(raw, Key("text", "bob@inner"))


def test_text_is_headers_then_body() -> None:
    raw = msg("Subject: Hello", "X-Mailer: Mutt", body="Body words\r\n")
    assert decoded_fields(raw)["text"] == "subject: hello x-mailer: mutt body words "
    assert search(raw, Key("text", "mutt body"))
    assert not search(raw, Key("body", "mutt"))


def test_whitespace_collapsing_in_keys_and_text() -> None:
    raw = msg("Subject: a   spaced\r\n\tsubject", body="line one\r\n\r\n\r\n   line\ttwo\r\n")
    assert decoded_fields(raw)["subject"] == "a spaced subject"
    assert search(raw, Key("subject", "spaced  subject"))
    assert search(raw, Key("body", "one line two"))
    assert search(raw, Key("body", " line"))  # leading space: a word start
    assert not search(raw, Key("body", " ine"))


# --- the 64-character rule -------------------------------------------------------------------------------------


def test_long_runs_are_not_searchable() -> None:
    assert LONG_RUN_LIMIT == 64
    ok, too_long = "a" * 64, "b" * 65
    raw = msg("Subject: x", body=f"start {ok} mid {too_long} end x{too_long}y\r\n")
    body = decoded_fields(raw)["body"]
    assert body == f"start {ok} mid   end   "
    assert search(raw, Key("body", ok)) and search(raw, Key("body", "aaaa mid"))
    assert not search(raw, Key("body", "bbb")) and not search(raw, Key("body", "xb"))
    assert not search(raw, Key("body", "mid end"))  # no match spans the removed run
    assert search(raw, Key("body", "mid ")) and search(raw, Key("body", " end"))


def test_long_run_rule_applies_after_normalisation() -> None:
    # 60 letters + "ﬀ" (1 character, 2 after NFKD) + 3 = 65 word characters only once normalised
    word = "a" * 60 + "\ufb00" + "bbb"
    raw = msg("Subject: " + word, body=f"{'c' * 30}-{'d' * 40}\r\n", encoding="utf-8")
    assert decoded_fields(raw)["subject"] == " "
    assert search(raw, Key("body", "c" * 30 + "-" + "d" * 40))  # '-' is not a word character


# --- evaluator ---------------------------------------------------------------------------------------------------


def test_boolean_operators() -> None:
    raw = msg("Subject: apples and pears", "From: Ann <ann@example.org>", body="Fruit salad\r\n")
    assert search(raw, All())
    assert search(raw, And((Key("subject", "apples"), Key("body", "salad"))))
    assert not search(raw, And((Key("subject", "apples"), Key("body", "soup"))))
    assert search(raw, Or(Key("subject", "kiwi"), Key("from", "ANN@")))
    assert search(raw, Not(Key("subject", "kiwi")))
    assert not search(raw, Not(Or(Key("subject", "kiwi"), Key("text", "salad"))))
    assert search(raw, And((Key("text", "fruit"), Not(Or(Key("cc", "x"), Key("bcc", "y"))))))
    assert search(raw, Key("cc", "")) and search(raw, Key("text", ""))


def test_matches_is_duck_typed() -> None:
    class Key:  # same shape as ftsd.query.Key, different class
        def __init__(self, field: str, value: str, header: str | None = None) -> None:
            self.field, self.value, self.header = field, value, header

    assert matches({"subject": "hello world"}, Key("subject", "WORLD"))
    with pytest.raises(TypeError):
        matches({}, object())


def test_reference_imports_nothing_from_ftsd() -> None:
    tree = ast.parse(Path(reference.__file__).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not any(name == "ftsd" or name.startswith("ftsd.") for name in imported)


# --- Maildir++ scanning --------------------------------------------------------------------------------------------


def _put(box: Path, sub: str, name: str, raw: bytes) -> None:
    for d in ("cur", "new", "tmp"):
        (box / d).mkdir(parents=True, exist_ok=True)
    (box / sub / name).write_bytes(raw)


def test_reference_index_scans_maildirpp(tmp_path: Path) -> None:
    root = tmp_path / "Maildir"
    _put(root, "cur", "1002.M2P1.host,S=10:2,S", msg("Subject: second"))
    _put(root, "new", "1001.M1P1.host,S=10", msg("Subject: first"))
    _put(root, "cur", "1003.M3P1.host:2,", msg("Subject: third word"))
    _put(root, "tmp", "1004.M4P1.host", msg("Subject: in tmp, not delivered"))
    _put(root / ".Lists.Dev", "cur", "2001.M1P1.host:2,S", msg("Subject: word in a folder"))
    (root / ".not-a-maildir").mkdir()
    ref = ReferenceIndex(root)
    assert sorted(ref.mailboxes) == ["INBOX", "Lists.Dev"]
    assert [r.path.name.split(".")[0] for r in ref.records("INBOX")] == ["1001", "1002", "1003"]
    assert ref.search("INBOX", Key("subject", "word")) == [3]
    assert ref.search("INBOX", Key("subject", "t")) == [1, 3]
    assert ref.search("INBOX", Not(Key("subject", "second"))) == [1, 3]
    assert ref.search("Lists.Dev", Key("subject", "word")) == [1]
    assert ref.search("INBOX", Key("text", "delivered")) == []
    assert len(ref) == 4


def test_reference_index_uses_dovecot_uidlist(tmp_path: Path) -> None:
    root = tmp_path / "Maildir"
    _put(root, "cur", "a.M1P1.host:2,S", msg("Subject: alpha"))
    _put(root, "cur", "b.M1P1.host:2,S", msg("Subject: beta"))
    _put(root, "new", "c.M1P1.host", msg("Subject: gamma"))
    (root / "dovecot-uidlist").write_text(
        "3 V1234 N40 G0123456789abcdef\nb.M1P1.host\n7 :b.M1P1.host\n12 W300 :a.M1P1.host:2,S\n15 :gone.M9\n"
    )
    ref = ReferenceIndex(root)
    assert [(r.uid, r.path.name[0]) for r in ref.records("INBOX")] == [(7, "b"), (12, "a"), (40, "c")]
    assert ref.search("INBOX", Key("subject", "a")) == [7, 12, 40]
    assert ref.search("INBOX", Key("subject", "gamma")) == [40]


def test_reference_index_parallel_build_matches_serial(tmp_path: Path) -> None:
    root = tmp_path / "Maildir"
    for i in range(210):
        _put(root, "cur", f"{1000 + i}.M{i}P1.host:2,S", msg(f"Subject: message {i}", body=f"n{i % 7}\r\n"))
    serial, parallel = ReferenceIndex(root), ReferenceIndex(root, workers=2)
    query = Or(Key("body", "n3"), Key("subject", "message 20"))
    assert serial.search("INBOX", query) == parallel.search("INBOX", query) != []
