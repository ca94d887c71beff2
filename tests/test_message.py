from email.message import EmailMessage

from ftsd.message import parse_message
from ftsd.settings import DecoderSettings, Settings

S = Settings()


def test_rfc2047_headers_and_qp_latin1_body():
    raw = (b"Subject: =?iso-8859-1?q?Gr=F6=DFe_aus_Z=FCrich?=\nFrom: =?utf-8?b?SsO8cmdlbg==?= <j@example.org>\n"
           b"To: a@b.c\nCc: c@d.e\nContent-Type: text/plain; charset=iso-8859-1\n"
           b"Content-Transfer-Encoding: quoted-printable\n\nFahrl=E4nder\n")
    p = parse_message(raw, S)
    assert p.subject == "Größe aus Zürich" and p.from_ == "Jürgen <j@example.org>"
    assert p.to == "a@b.c" and p.cc == "c@d.e" and "Fahrländer" in p.body
    assert "Subject: Größe aus Zürich" in p.headers and "Größe" not in p.other_headers


def test_html_visible_text_only():
    raw = (b"Content-Type: text/html; charset=utf-8\n\n<html><head><style>.hiddenword{}</style></head>"
           b"<body><script>trackme()</script><p>Hello&nbsp;<b>world</b></p><td>a</td><td>b</td></body></html>")
    body = parse_message(raw, S).body
    assert "hiddenword" not in body and "trackme" not in body and "world" in body
    assert "ab" not in body.replace("\n", " ").split()


def test_unknown_and_mislabelled_charsets():
    raw = b"Content-Type: text/plain; charset=x-foobar\n\nCroque Ni\xc3\xa7oise\n"
    assert "Niçoise" in parse_message(raw, S).body
    raw = b"Content-Type: text/plain; charset=iso-8859-1\n\nK\xc3\xb6lsch\n"
    assert "Kölsch" in parse_message(raw, S).body
    raw = b"Content-Type: text/plain; charset=koi8-r\n\n" + "счёт".encode("koi8-r")
    assert "счёт" in parse_message(raw, S).body


def test_nested_message_and_attachment_names():
    inner = EmailMessage()
    inner["Subject"] = "inner subject zebra"
    inner.set_content("inner body giraffe")
    outer = EmailMessage()
    outer["Subject"] = "Fwd"
    outer.set_content("see below")
    outer.add_attachment(inner)
    outer.add_attachment(b"report text quarterlyrevenue", maintype="text", subtype="plain", filename="report.txt")
    p = parse_message(outer.as_bytes(), S)
    assert "zebra" in p.body and "giraffe" in p.body and "quarterlyrevenue" in p.body and "report.txt" in p.body
    assert "zebra" not in p.subject


def test_malformed_mime_never_raises():
    raw = (b"Content-Type: multipart/mixed; boundary=XX\n\n--XX\nContent-Type: text/plain\n"
           b"Content-Transfer-Encoding: base64\n\n@@@not base64!!\n--XX\nContent-Type: text/plain\n\nsurvivor\n")
    p = parse_message(raw, S)
    assert "survivor" in p.body
    assert parse_message(b"", S).body == ""
    assert parse_message(b"\xff\xfe\x00garbage", S) is not None


def _with_attachments(*parts: tuple[bytes, str, str, str]) -> bytes:
    msg = EmailMessage()
    msg["Subject"] = "attachments"
    msg.set_content("the text part")
    for data, maintype, subtype, filename in parts:
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes()


def test_binary_parts_skipped_from_their_headers():
    """Images, audio, archives: file name indexed, size and reason recorded as decode_attachment gives them, the
    body not decoded (only its first bytes are read, for the magic bytes of a decodable format)."""
    png = bytes(range(256)) * 40
    raw = _with_attachments((png, "image", "png", "photo-zebra.png"), (b"\x00" * 999, "audio", "ogg", "tune.ogg"),
                            (b"PK\x03\x04" + b"\x01" * 5000, "application", "zip", "archive.zip"))
    p = parse_message(raw, S)
    assert "photo-zebra.png" in p.body and "tune.ogg" in p.body and "archive.zip" in p.body
    skipped = {i.filename: (i.size, i.skipped, i.decoder) for i in p.parts if i.filename}
    assert skipped == {"photo-zebra.png": (len(png), "no decoder for image/png", None),
                       "tune.ogg": (999, "no decoder for audio/ogg", None),
                       "archive.zip": (5004, "no decoder for application/zip", None)}
    small = Settings(decoders=DecoderSettings(max_part_bytes=1000))
    big = {i.filename: i.skipped for i in parse_message(raw, small).parts if i.filename}
    assert big["photo-zebra.png"] == f"larger than decoders.max_part_bytes ({len(png)} bytes)"
    assert big["tune.ogg"] == "no decoder for audio/ogg"


def test_magic_bytes_still_found_in_undeclared_parts():
    """An octet-stream part without a known extension is recognised by its first bytes, as before."""
    ics = b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:quarterlyplanning\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    p = parse_message(_with_attachments((ics, "application", "octet-stream", "invite.bin")), S)
    assert "quarterlyplanning" in p.body
    assert [i.decoder for i in p.parts if i.filename == "invite.bin"] == ["ics"]


def test_single_part_body_is_the_whole_rest():
    raw = b"Subject: s\r\nX-No-Colon-Next: v\r\n\r\nline one\r\n\r\nline two\rlast"
    p = parse_message(raw, S)
    assert p.body == "line one\r\n\r\nline two\rlast" and p.subject == "s"
    # a header block the FeedParser ends early (a line without a colon) is parsed as before
    p = parse_message(b"Subject: s\nnot a header\nX: y\n\nbody\n", S)
    assert "not a header" in p.body and p.subject == "s"
