from email.message import EmailMessage

from ftsd.message import parse_message
from ftsd.settings import Settings

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
