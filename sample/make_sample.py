#!/usr/bin/env python3
"""(Re)generate sample/vmail/: a small Dovecot-style Maildir++ tree for the README quick start.

Layout is Dovecot's `mail_location = maildir:/home/vmail/%d/%n` for two virtual users:

    vmail/example.org/alice/   INBOX, .Sent, .Archive, .Archive.2024, .Trash, .Junk, .Entw&APw-rfe (= "Entwürfe"),
                               each with a dovecot-uidlist (v3), plus subscriptions
    vmail/example.org/bob/     INBOX and .Sent, no dovecot-uidlist anywhere (ftsd assigns UIDs itself)

Stdlib only and deterministic: fixed dates, fixed file names, no randomness. Messages are written as literal
bytes (LF line endings, as Dovecot stores them) so that the dirt in them is exactly the intended dirt.
File mtimes are set to the Date: header time. Run:  python3 sample/make_sample.py [--out DIR]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import quopri
import re
import shutil
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path

HOST = "mail.example.org"
HERE = Path(__file__).resolve().parent

# Empty cur/new/tmp directories get this file so that git keeps them. Maildir names starting with "." are not
# messages (Maildir spec; Dovecot ignores them), so readers must skip it.
KEEP = ".gitkeep"


# --------------------------------------------------------------------------------------------- encoding helpers


def mutf7(name: str) -> str:
    """IMAP modified UTF-7 (RFC 3501 5.1.3), as Dovecot uses for Maildir++ folder names."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(raw).decode("ascii").rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


def _q(data: bytes) -> str:
    safe = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!*+-/"
    return "".join("_" if c == 0x20 else chr(c) if c in safe else f"={c:02X}" for c in data)


def ew(text: str, charset: str, enc: str = "q", *, raw: bytes | None = None) -> str:
    """RFC 2047 encoded word(s) for a header; split so each word stays <= 75 chars, folded onto new lines.

    `raw` forces the exact bytes (for mislabelled headers); `enc` keeps its case in the output ("q", "B", ...).
    """
    label = charset

    def word(chunk: bytes) -> str:
        payload = _q(chunk) if enc.lower() == "q" else base64.b64encode(chunk).decode("ascii")
        return f"=?{label}?{enc}?{payload}?="

    if raw is not None:
        return word(raw)
    words: list[str] = []
    chunk = ""
    for ch in text:
        if chunk and len(word((chunk + ch).encode(charset))) > 75:
            words.append(word(chunk.encode(charset)))
            chunk = ""
        chunk += ch
    if chunk:
        words.append(word(chunk.encode(charset)))
    return "\n ".join(words)


def b64(data: bytes) -> bytes:
    return base64.encodebytes(data)


def qp(data: bytes) -> bytes:
    return quopri.encodestring(data)


def render(headers: list[tuple[str, str]], body: bytes | str) -> bytes:
    """Header block + blank line + body. Raw non-ASCII in header values is written as UTF-8 (RFC 6532 style)."""
    head = "".join(f"{name}: {value}\n" for name, value in headers).encode("utf-8")
    data = body.encode("utf-8") if isinstance(body, str) else body
    return head + b"\n" + data


def multipart(boundary: str, parts: list[bytes], *, close: bool = True,
              preamble: str = "This is a multi-part message in MIME format.\n") -> bytes:
    out = [preamble.encode("ascii")]
    for part in parts:
        out += [b"--", boundary.encode("ascii"), b"\n", part if part.endswith(b"\n") else part + b"\n"]
    if close:
        out.append(b"--" + boundary.encode("ascii") + b"--\n")
    return b"".join(out)


def when(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S %z")


def fake_bytes(seed: str, size: int) -> bytes:
    """Deterministic pseudo-random bytes (a SHA-256 chain)."""
    out = b""
    block = seed.encode("utf-8")
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return out[:size]


def fake_wav(seed: str, samples: int = 1200) -> bytes:
    """A tiny valid-looking 8 kHz 8-bit mono WAV file."""
    data = bytes((128 + (b % 64) - 32) for b in fake_bytes(seed, samples))
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, 8000, 8000, 1, 8)
    return b"RIFF" + struct.pack("<I", 4 + len(fmt) + 8 + len(data)) + b"WAVE" + fmt + b"data" + \
        struct.pack("<I", len(data)) + data


# --------------------------------------------------------------------------------------------- the messages


@dataclass(frozen=True)
class Mail:
    user: str  # "alice" or "bob"
    folder: str  # "INBOX", "Sent", "Archive/2024", "Entwürfe", ...
    date: datetime
    data: bytes
    flags: str = "S"
    new: bool = False


ALICE_HDR = f"{ew('Alice Fahrländer', 'utf-8')} <alice@example.org>"
BOB = "Bob Meier <bob@example.org>"
CAROL = "Carol Nguyen <carol@example.com>"


def std(frm: str, to: str, subject: str | None, date: datetime, msgid: str,
        extra: Sequence[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    headers = [("From", frm), ("To", to)]
    if subject is not None:
        headers.append(("Subject", subject))
    headers += [("Date", format_datetime(date)), ("Message-ID", f"<{msgid}>"), ("MIME-Version", "1.0")]
    return headers + list(extra)


def text_plain(charset: str = "us-ascii", cte: str = "7bit", extra: str = "") -> list[tuple[str, str]]:
    return [("Content-Type", f"text/plain; charset={charset}{extra}"), ("Content-Transfer-Encoding", cte)]


def alice_inbox() -> list[Mail]:
    mails: list[Mail] = []
    to = "alice@example.org"  # the display name "Alice Fahrländer" would make that word match every message

    d = when("2024-01-08 09:12:00 +0100")
    mails.append(Mail("alice", "INBOX", d, render(
        std('"Kessler AG Buchhaltung" <billing@example.com>', to, "Invoice INV-2024-0117 for January hosting", d,
            "inv-2024-0117.20240108081200@example.com", text_plain()),
        "Dear Alice,\n\n"
        "please find below invoice INV-2024-0117 for the hosting services in January 2024.\n\n"
        "  Dedicated server (rack 4, Frankfurt)      EUR 249.00\n"
        "  Backup storage 2 TB                       EUR  39.00\n"
        "  ------------------------------------------------------\n"
        "  Total                                     EUR 288.00\n\n"
        "Payment is due within 30 days to IBAN DE02 1203 0000 0000 2020 51.\n\n"
        "Kind regards\nKessler AG accounts receivable\n"), flags="RS"))

    d = when("2024-01-15 07:30:00 +0100")
    html = (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Kessler AG</title>\n"
        "<style type=\"text/css\">\n  .hiddenstyleword { color: #c00; }\n  body { font-family: Arial, sans-serif; }\n"
        "</style>\n<script type=\"text/javascript\">\n  var trackingscriptword = \"beacon\";\n"
        "  document.write('<img src=\"https://track.example.com/p.gif\">');\n</script>\n</head>\n"
        "<body><h1>Payment reminder</h1>\n"
        "<p>Dear Alice,</p><p>our records show that invoice <b>INV-2024-0117</b> over EUR&nbsp;288.00 is still "
        "open.</p>\n<p>Zahlungserinnerung &ndash; bitte &uuml;berweisen Sie den Betrag bis zum 31.&nbsp;Januar."
        "</p>\n<table><tr><td>Rechnung</td><td>INV-2024-0117</td></tr><tr><td>Betrag</td><td>288,00&nbsp;&euro;"
        "</td></tr></table>\n<p style=\"font-size:9px\">Kessler AG &middot; Z&uuml;rcherstrasse 5</p>\n"
        "</body></html>\n")
    mails.append(Mail("alice", "INBOX", d, render(
        std('"Kessler AG" <noreply@example.com>', to, "Payment reminder: invoice INV-2024-0117", d,
            "reminder-0117.20240115@example.com",
            [("Content-Type", "text/html; charset=utf-8"), ("Content-Transfer-Encoding", "quoted-printable")]),
        qp(html.encode("utf-8")))))

    d = when("2024-02-05 16:40:00 +0100")
    notes = ("Hallo Alice,\n\nhier das Protokoll der Teamsitzung vom Montag:\n\n"
             "1. Größe des neuen Serverraums: 24 m², Klimaanlage mit 12 kW.\n"
             "2. Alice (Fahrländer) übernimmt die Ausschreibung für die Racks.\n"
             "3. Die Quartalszahlen stehen im Anhang (report.txt).\n"
             "4. Nächster Termin: 12. Februar, 10:00 Uhr, Raum Matterhorn.\n\nGruß\nBob\n")
    notes_html = ("<html><body><p>Hallo Alice,</p><p>hier das Protokoll der Teamsitzung vom Montag:</p><ol>"
                  "<li>Gr&ouml;&szlig;e des neuen Serverraums: 24&nbsp;m&sup2;, Klimaanlage mit 12&nbsp;kW.</li>"
                  "<li>Alice (Fahrl&auml;nder) &uuml;bernimmt die Ausschreibung f&uuml;r die Racks.</li>"
                  "<li>Die Quartalszahlen stehen im Anhang (report.txt).</li>"
                  "<li>N&auml;chster Termin: 12. Februar, 10:00 Uhr, Raum Matterhorn.</li></ol>"
                  "<p>Gru&szlig;<br>Bob</p></body></html>\n")
    report = ("Q4 2023 report\n==============\n\nquarterlyrevenue: EUR 1,240,000 (+8 % year over year)\n"
              "new customers:    37\nchurn:            2.1 %\nheadcount:        19\n")
    alt = multipart("=_alt_b7f1", [
        render(text_plain("utf-8", "quoted-printable"), qp(notes.encode("utf-8"))),
        render([("Content-Type", "text/html; charset=utf-8"), ("Content-Transfer-Encoding", "quoted-printable")],
               qp(notes_html.encode("utf-8"))),
    ], preamble="")
    body = multipart("=_mixed_b7f1", [
        render([("Content-Type", 'multipart/alternative; boundary="=_alt_b7f1"')], alt),
        render([("Content-Type", 'text/plain; charset=us-ascii; name="report.txt"'),
                ("Content-Disposition", 'attachment; filename="report.txt"'),
                ("Content-Transfer-Encoding", "base64")], b64(report.encode("ascii"))),
    ])
    mails.append(Mail("alice", "INBOX", d, render(
        std(BOB, to, ew("Protokoll Teamsitzung: Größe des Serverraums", "utf-8"), d,
            "protokoll-0205.bob@example.org",
            [("Cc", CAROL), ("Content-Type", 'multipart/mixed; boundary="=_mixed_b7f1"')]),
        body), flags="RS"))

    d = when("2024-02-20 11:05:00 +0100")
    trip = ("Grüezi Frau Fahrländer\n\nfür Ihre Reise nach Zürich am 14. März habe ich Folgendes reserviert:\n\n"
            "- Hotel Storchen, Weinplatz 2, 8001 Zürich (2 Nächte)\n"
            "- Tisch im Zunfthaus zur Waag, Donnerstag 19:30\n"
            "- Führung durch das Rechenzentrum in Glattbrugg, Freitag 09:00\n\n"
            "Treffpunkt ist der Hauptbahnhof, Ausgang Bahnhofstrasse.\n\nFreundliche Grüsse\nJürg Brändli\n")
    mails.append(Mail("alice", "INBOX", d, render(
        std(f"{ew('Jürg Brändli', 'iso-8859-1')} <juerg@ch.example.net>", to,
            ew("Reise nach Zürich", "iso-8859-1", "b"), d, "zh-trip-20240220@ch.example.net",
            text_plain("iso-8859-1", "quoted-printable")),
        qp(trip.encode("iso-8859-1")))))

    d = when("2024-03-02 03:14:07 +0000")
    outage = (
        "nixos-upgrade.service failed on host nas at Sat 2024-03-02 03:14:07 UTC.\n\n"
        "\u00d7 nixos-upgrade.service - NixOS Upgrade\n"
        "     Loaded: loaded (/etc/systemd/system/nixos-upgrade.service; linked; preset: enabled)\n"
        "     Active: failed (Result: exit-code) since Sat 2024-03-02 03:14:07 UTC; 12ms ago\n"
        "    Process: 48211 ExecStart=/nix/store/8w1q6m2x-unit-script-nixos-upgrade-start/bin/nixos-upgrade-start"
        " (code=exited, status=1/FAILURE)\n"
        "   Main PID: 48211 (code=exited, status=1/FAILURE)\n\n"
        "Mar 02 03:13:58 nas nixos-upgrade-start[48211]: error: unable to download "
        "'https://channels.nixos.org/nixos-23.11/nixexprs.tar.xz': HTTP error 502\n"
        "Mar 02 03:14:07 nas systemd[1]: nixos-upgrade.service: Main process exited, code=exited, "
        "status=1/FAILURE\n"
        "Mar 02 03:14:07 nas systemd[1]: nixos-upgrade.service: Failed with result 'exit-code'.\n"
        "Mar 02 03:14:07 nas systemd[1]: Failed to start NixOS Upgrade.\n")
    outage_headers = [("Auto-Submitted", "auto-generated"), ("X-Systemd-Unit", "nixos-upgrade.service"),
                      *text_plain("utf-8", "8bit")]
    mails.append(Mail("alice", "INBOX", d, render(
        std('"systemd on nas" <root@nas.example.org>', "admins@example.org", "[nas] nixos-upgrade.service failed",
            d, "unit-failure.48211.nas@nas.example.org", outage_headers),
        outage), flags="FS"))

    d = when("2024-03-05 10:00:00 +0100")
    news = ("Nordlicht News \u2013 März 2024\n\n"
            "\u201cSonderangebot\u201d: 20 % Rabatt auf alle Wartungsverträge \u2013 nur bis 31. März!\n"
            "Preise ab 99 \u20ac im Monat.\n\n"
            "Außerdem: Unser neues Rechenzentrum in Zürich ist online.\n\n"
            "Abmelden: https://lists.example.com/unsubscribe/news\n")
    news_html = ("<html><body><h2>Nordlicht News &#8211; M&auml;rz 2024</h2>"
                 "<p>\u201cSonderangebot\u201d: 20&nbsp;% Rabatt auf alle Wartungsvertr&auml;ge \u2013 nur bis 31. "
                 "M&auml;rz! Preise ab 99&nbsp;\u20ac im Monat.</p>"
                 "<p>Au&szlig;erdem: Unser neues Rechenzentrum in Z&uuml;rich ist online.</p>"
                 "<p><a href=\"https://lists.example.com/unsubscribe/news\">Abmelden</a></p></body></html>\n")
    alt = multipart("----=_NextPart_000_0012_01DA6F1E", [
        render(text_plain("windows-1252", "quoted-printable"), qp(news.encode("windows-1252"))),
        render([("Content-Type", "text/html; charset=windows-1252"),
                ("Content-Transfer-Encoding", "quoted-printable")], qp(news_html.encode("windows-1252"))),
    ])
    mails.append(Mail("alice", "INBOX", d, render(
        std('"Nordlicht Newsletter" <newsletter@lists.example.com>', to,
            ew("Nordlicht News \u2013 März 2024", "windows-1252"), d, "news-2024-03.0012@lists.example.com",
            [("List-Id", '"Nordlicht customer news" <news.lists.example.com>'),
             ("List-Unsubscribe", "<mailto:news-unsubscribe@lists.example.com>, "
                                  "<https://lists.example.com/unsubscribe/news>"),
             ("Precedence", "bulk"),
             ("Content-Type", 'multipart/alternative; boundary="----=_NextPart_000_0012_01DA6F1E"')]),
        alt), flags=""))

    d = when("2024-03-11 12:20:00 +0300")
    ru = ("Здравствуйте, Алиса!\n\nВысылаю счёт за февраль. Оплата до 25 марта.\n"
          "Встреча в Москве переносится на апрель.\n\nС уважением,\nДмитрий Соколов\n")
    mails.append(Mail("alice", "INBOX", d, render(
        std(f"{ew('Дмитрий Соколов', 'koi8-r', 'b')} <dmitri@ru.example.net>", to,
            ew("Счёт за февраль", "koi8-r", "b"), d, "schet-02.dmitri@ru.example.net",
            text_plain("koi8-r", "base64")),
        b64(ru.encode("koi8-r"))), flags="RS"))

    d = when("2024-03-18 17:45:00 +0900")
    ja = ("アリスさん\n\n先日の会議の議事録を送ります。\n東京オフィスの移転は六月に決まりました。\n\n"
          "よろしくお願いします。\n山田\n")
    mails.append(Mail("alice", "INBOX", d, render(
        std(f"{ew('山田 由紀', 'iso-2022-jp', 'B')} <yuki@jp.example.net>", to,
            ew("会議の議事録", "iso-2022-jp", "B"), d, "gijiroku-0318.yuki@jp.example.net",
            text_plain("iso-2022-jp", "7bit")),
        ja.encode("iso-2022-jp"))))

    d = when("2024-03-25 09:30:00 +0800")
    zh = "Alice 你好，\n\n附上三月份的发票。北京办公室的服务器已经安装完毕。\n\n祝好，\n李伟\n"
    mails.append(Mail("alice", "INBOX", d, render(
        std(f"{ew('李伟', 'gb2312', 'b')} <li@cn.example.net>", to, ew("发票和报价", "gb2312", "b"), d,
            "fapiao-0325.li@cn.example.net", text_plain("gb2312", "base64")),
        b64(zh.encode("gb2312")))))

    d = when("2024-04-02 14:10:00 +0200")
    inner_date = when("2024-03-28 09:00:00 +0100")
    inner = render(
        [("From", '"Kaffee Direkt Sales" <sales@example.com>'), ("To", BOB),
         ("Subject", "Espresso machine offer: CappuccinoMatic 3000"), ("Date", format_datetime(inner_date)),
         ("Message-ID", "<offer-3000@example.com>"), ("MIME-Version", "1.0"), *text_plain()],
        "Dear customer,\n\nthe CappuccinoMatic 3000 is available for EUR 1,899 including installation.\n"
        "A barista training for up to 8 people is included.\n\nYour Kaffee Direkt sales team\n")
    body = multipart("=_fwd_33a0", [
        render(text_plain("utf-8", "8bit"), "Alice, see below \u2014 shall we order it for the kitchen?\n\nBob\n"),
        render([("Content-Type", 'message/rfc822; name="Espresso machine offer.eml"'),
                ("Content-Disposition", 'inline; filename="Espresso machine offer.eml"')], inner),
    ])
    mails.append(Mail("alice", "INBOX", d, render(
        std(BOB, to, "Fwd: Espresso machine offer: CappuccinoMatic 3000", d, "fwd-espresso.bob@example.org",
            [("Content-Type", 'multipart/mixed; boundary="=_fwd_33a0"')]),
        body)))

    d = when("2024-04-09 14:31:10 +0200")
    vm = ("Dear Alice Fahrländer:\n\n\tjust wanted to let you know you were just left a 0:23 long message "
          "(number 7)\nin mailbox 201 from Hotel Storchen <+41446681800>, on Tuesday, April 09, 2024 at "
          "02:31:10 PM so you might\nwant to check it when you get a chance.  Thanks!\n\n\t\t\t\t--Asterisk\n")
    body = multipart("----voicemail_720148211", [
        render(text_plain("utf-8", "8bit"), vm),
        render([("Content-Type", 'audio/x-wav; name="msg0007.wav"'), ("Content-Transfer-Encoding", "base64"),
                ("Content-Description", "Voicemail sound attachment."),
                ("Content-Disposition", 'attachment; filename="msg0007.wav"')], b64(fake_wav("msg0007"))),
    ])
    mails.append(Mail("alice", "INBOX", d, render(
        std('"Asterisk PBX" <asterisk@pbx.example.org>', to, "[PBX]: New message 7 in mailbox 201", d,
            "Asterisk-7-720148211-201-48211@pbx.example.org",
            [("X-Asterisk-CallerID", "+41446681800"), ("X-Asterisk-CallerIDName", "Hotel Storchen"),
             ("X-Asterisk-VM-Message-Num", "7"), ("X-Asterisk-VM-Context", "voicemail"),
             ("X-Asterisk-VM-Extension", "201"), ("X-Asterisk-VM-Duration", "23"),
             ("Content-Type", 'multipart/mixed; boundary="----voicemail_720148211"')]),
        body)))

    d = when("2024-04-16 20:02:00 +0200")
    koeln = ("Hallo Alice,\n\nviele Grüße aus Köln! Das Kölsch im Brauhaus war hervorragend, nächstes Mal kommst "
             "du mit.\nDie Größe der Präsentation (42 MB) war übrigens zu groß für den Mailserver.\n\nKlaus\n")
    mails.append(Mail("alice", "INBOX", d, render(
        std(f"{ew('Klaus Fahrländer', 'utf-8')} <klaus@example.com>", to,
            ew("", "iso-8859-1", raw="Grüße aus Köln".encode()), d, "koeln-0416.klaus@example.com",
            [("X-Mailer", "Mailer 1.0 (mislabelled)"), *text_plain("iso-8859-1", "8bit")]),
        koeln.encode("utf-8"))))

    d = when("2024-04-23 08:15:00 +0200")
    cafe = ("Bonjour Alice,\n\nyour lunch order for Friday is confirmed: 12x Croque Monsieur, 12x Salade Niçoise,"
            "\ncrème brûlée for dessert. Delivery to Nordlicht Systems, 3rd floor, 12:15.\n\nCafé Crème Catering\n")
    mails.append(Mail("alice", "INBOX", d, render(
        std('"Cafe Creme Catering" <order@catering.example.com>', to, "Lunch order confirmation #5521", d,
            "order-5521@catering.example.com", [*text_plain('"x-foobar"', "8bit")]),
        cafe.encode("iso-8859-1"))))

    d = when("2024-04-30 02:00:00 +0200")
    blob = base64.b64encode(fake_bytes("borg-key", 4500)).decode("ascii")
    mails.append(Mail("alice", "INBOX", d, render(
        std('"Backup Robot" <backup@nas.example.org>', to, "Backup report for nas: OK", d,
            "backup-20240430.nas@nas.example.org", [("Auto-Submitted", "auto-generated"), *text_plain()]),
        "Nightly backup finished: 1,204 files, 3.2 GB, duration 00:41:12.\n"
        "Snapshot label: borgsnapshot-2024-04-30\n\n"
        f"-----BEGIN ENCRYPTED KEY BLOB-----\n{blob}\n-----END ENCRYPTED KEY BLOB-----\n")))

    d = when("2024-05-06 09:00:00 +0200")
    mails.append(Mail("alice", "INBOX", d, render(
        std(BOB, to, ew("Budgetplanung 2025 \u2013 Termin", "utf-8"), d, "budget-2025.bob@example.org",
            [("Cc", f"{CAROL}, Dave Okafor <dave@example.org>"), ("Bcc", '"Eve Schmidt" <eve@example.org>'),
             *text_plain("utf-8", "quoted-printable")]),
        qp("Hallo zusammen,\n\ndie Budgetplanung für 2025 findet am 21. Mai statt. Bitte bringt eure Forecasts "
           "mit.\nRaum: Matterhorn (3. OG).\n\nBob\n".encode()))))

    d = when("2024-05-13 13:37:00 +0200")
    broken = (b"This is a multi-part message in MIME format.\n"
              b"------=_Part_0042\n"
              b"Content-Type: text/plain; charset=us-ascii\n\n"
              b"Scanned document from the Ricoh copier on floor 2 (scannerdocument 0042).\n"
              b"------=_Part_0042\n"
              b"Content-Type: text/plain; charset=us-ascii; name=\"ocr.txt\"\n"
              b"Content-Transfer-Encoding: base64\n"
              b"Content-Disposition: attachment; filename=\"ocr.txt\"\n\n"
              b"T0NSIHJlc3VsdDogbWFsZm9ybWVkYmFzZTY0IHRleHQgZnJvbSB0aGUgc2Nhbm5lcg=!=*==\n"
              b"AAA%%%$$$ not base64 at all \xff\xfe\n"
              b"------=_Part_004")  # misspelt delimiter, no closing boundary, no final newline
    mails.append(Mail("alice", "INBOX", d, render(
        std('"Scanner" <scanner@example.org>', to, "Scanned document 0042", d, "scan-0042@example.org",
            [("Content-Type", 'multipart/mixed; boundary="----=_Part_0042"')]),
        broken)))

    d = when("2024-05-20 18:00:00 +0200")
    mails.append(Mail("alice", "INBOX", d, render(
        std(CAROL, to, "ping", d, "ping-0520.carol@example.com", text_plain()), b"")))

    d = when("2024-06-03 08:05:00 +0200")
    mails.append(Mail("alice", "INBOX", d, render(
        std('"Kessler AG Buchhaltung" <billing@example.com>', to, "Invoice INV-2024-0342 (June)", d,
            "inv-2024-0342.20240603060500@example.com", text_plain()),
        "Dear Alice,\n\nplease find below invoice INV-2024-0342 for the hosting services in June 2024.\n\n"
        "  Total                                     EUR 288.00\n\nKind regards\nKessler AG accounts receivable\n"),
        flags="", new=True))
    return mails


def alice_others() -> list[Mail]:
    mails: list[Mail] = []
    me = ALICE_HDR

    d = when("2024-01-08 11:02:00 +0100")
    mails.append(Mail("alice", "Sent", d, render(
        std(me, '"Kessler AG Buchhaltung" <billing@example.com>', "Re: Invoice INV-2024-0117 for January hosting",
            d, "re-inv-0117.alice@example.org",
            [("In-Reply-To", "<inv-2024-0117.20240108081200@example.com>"), *text_plain("utf-8", "8bit")]),
        "Thanks, paid today by bank transfer.\n\nAlice Fahrländer\nNordlicht Systems GmbH\n\n"
        "> Dear Alice,\n>\n> please find below invoice INV-2024-0117 for the hosting services in January 2024.\n")))

    d = when("2024-02-21 08:50:00 +0100")
    mails.append(Mail("alice", "Sent", d, render(
        std(me, f"{ew('Hotel Storchen Zürich', 'utf-8')} <reservations@hotel.example.net>",
            ew("Reservierung 14.\u201316. März", "utf-8"), d, "hotel-zh.alice@example.org",
            text_plain("utf-8", "quoted-printable")),
        qp("Sehr geehrte Damen und Herren,\n\nich bestätige die Reservierung eines Einzelzimmers vom 14. bis 16. März"
           " 2024 für Alice Fahrländer.\nAnkunft gegen 18 Uhr.\n\nMit freundlichen Grüßen\nAlice Fahrländer\n"
           "Nordlicht Systems GmbH\n".encode()))))

    d = when("2024-03-12 10:00:00 +0100")
    mails.append(Mail("alice", "Sent", d, render(
        std(me, f"{ew('Дмитрий Соколов', 'utf-8', 'b')} <dmitri@ru.example.net>",
            ew("Re: Счёт за февраль", "utf-8", "b"), d, "re-schet.alice@example.org",
            [("In-Reply-To", "<schet-02.dmitri@ru.example.net>"), *text_plain("utf-8", "base64")]),
        b64("Дмитрий, спасибо! Счёт оплачен.\nАлиса\n".encode()))))

    d = when("2024-05-06 15:30:00 +0200")
    csv = "Wartungsvertrag;Preis EUR/Monat\nBasis;99\nPremium;249\nPlatin;499\n"
    body = multipart("=_offer_51c2", [
        render(text_plain("utf-8", "8bit"),
               "Hallo Carol,\n\nanbei unsere Preise für den Wartungsvertrag. Das Premium-Paket enthält "
               "24/7-Bereitschaft.\n\nAlice\n"),
        render([("Content-Type", 'text/csv; charset=utf-8; name="preise.csv"'),
                ("Content-Disposition", 'attachment; filename="preise.csv"'),
                ("Content-Transfer-Encoding", "base64")], b64(csv.encode())),
    ])
    mails.append(Mail("alice", "Sent", d, render(
        std(me, CAROL, "Angebot Wartungsvertrag", d, "angebot-wartung.alice@example.org",
            [("Bcc", BOB), ("Content-Type", 'multipart/mixed; boundary="=_offer_51c2"')]),
        body)))

    d = when("2023-10-02 10:00:00 +0200")
    mails.append(Mail("alice", "Archive", d, render(
        std(BOB, me, "Project kickoff: Polarstern", d, "kickoff-polarstern.bob@example.org",
            text_plain("utf-8", "8bit")),
        "Hi Alice,\n\nkickoff for project Polarstern is on Thursday. Agenda:\n - scope and milestones\n"
        " - migration of the mail servers to Dovecot 2.3\n - budget\n\nBob\n"), flags="RS"))

    d = when("2023-11-07 09:00:00 +0100")
    mails.append(Mail("alice", "Archive", d, render(
        std('"Kessler AG Buchhaltung" <billing@example.com>', me, "Invoice INV-2023-0988 for November hosting", d,
            "inv-2023-0988@example.com", text_plain()),
        "Dear Alice,\n\ninvoice INV-2023-0988 for November 2023: EUR 288.00.\n\nKind regards\nKessler AG\n"),
        flags="RS"))

    d = when("2023-12-12 18:30:00 +0900")
    sjis = "アリス様\n\n今年も大変お世話になりました。\n大阪支社の新しい住所は来年お知らせします。\n\n山田由紀\n"
    mails.append(Mail("alice", "Archive", d, render(
        std(f"{ew('山田 由紀', 'shift_jis', 'b')} <yuki@jp.example.net>", me,
            ew("年末のご挨拶", "shift_jis", "b"), d, "nenmatsu.yuki@jp.example.net",
            text_plain("shift_jis", "8bit")),
        sjis.encode("shift_jis"))))

    d = when("2024-01-22 11:11:00 +0100")
    mails.append(Mail("alice", "Archive/2024", d, render(
        std('"Rack & Co." <sales@rack.example.com>', me, "Bestellung Serverschrank 42 HE", d,
            "order-rack-42@rack.example.com", text_plain("windows-1252", "8bit")),
        ("Guten Tag Frau Fahrländer,\n\nwir bestätigen Ihre Bestellung:\n"
         "Serverschrank \u201eProfi\u201c, Größe 42 HE, 800\u00d71000 mm, Preis 1.450 \u20ac netto.\n"
         "Liefertermin: KW 6.\n\nMit freundlichen Grüßen\nRack & Co.\n").encode("windows-1252"))))

    d = when("2024-01-30 13:00:00 +0100")
    mails.append(Mail("alice", "Archive/2024", d, render(
        std(BOB, me, "Dienstplan Februar", d, "dienstplan-02.bob@example.org", text_plain()),
        "Rufbereitschaft (on-call) im Februar:\n  KW 5: Alice\n  KW 6: Bob\n  KW 7: Dave\n  KW 8: Alice\n")))

    d = when("2024-02-14 12:00:00 +0100")
    mails.append(Mail("alice", "Archive/2024", d, render(
        std(CAROL, f"{me}, {BOB}", ew("Team-Event: Fondue in Zürich", "UTF-8", "Q"), d,
            "fondue.carol@example.com", text_plain("utf-8", "quoted-printable")),
        qp("Hi both,\n\nfondue evening at the Swiss Chuchi in Zürich on March 14th, 20:00 \u2014 after your "
           "data-center tour. Moitié-moitié for everyone!\n\nCarol\n".encode()))))

    d = when("2024-02-01 07:00:00 +0100")
    mails.append(Mail("alice", "Trash", d, render(
        std('"Druckerwelt" <angebote@druckerwelt.example.com>', me,
            ew("Gutschein: 50 % auf Druckerpatronen", "utf-8"), d, "gutschein-0201@druckerwelt.example.com",
            [("List-Id", "<angebote.druckerwelt.example.com>"), ("Content-Type", "text/html; charset=utf-8"),
             ("Content-Transfer-Encoding", "8bit")]),
        "<html><body><h1>Ihr Gutschein</h1><p>50&nbsp;% Rabatt auf alle Druckerpatronen mit dem Code "
        "<b>TONER50</b>.</p></body></html>\n")))

    d = when("2024-03-08 11:30:00 +0100")
    mails.append(Mail("alice", "Trash", d, render(
        std('"Kantine" <kantine@example.org>', "all@example.org", "Lunch menu week 10", d,
            "menu-kw10@example.org", text_plain("utf-8", "8bit")),
        "Montag: Zürcher Geschnetzeltes mit Rösti\nDienstag: Linsensuppe\nMittwoch: Käsespätzle\n"
        "Donnerstag: Fischstäbchen\nFreitag: Pizza\n")))

    d = when("2024-03-09 04:12:00 +0000")
    spam = ("<html><body><h1>CONGRATULATIONS!!!</h1><p>You are the lucky lotterywinner of 1,000,000 EUR.</p>"
            "<p>Send your bank details to claim your prize today.</p></body></html>\n")
    mails.append(Mail("alice", "Junk", d, render(
        std('"Intl Lottery Board" <winner@lottery.example.net>', me, "You have WON 1,000,000 EUR!!!", d,
            "win-88123@lottery.example.net",
            [("X-Spam-Flag", "YES"), ("X-Spam-Status", "Yes, score=14.2 required=5.0"),
             ("Content-Type", "text/html; charset=utf-8"), ("Content-Transfer-Encoding", "base64")]),
        b64(spam.encode()))))

    d = when("2024-04-11 02:22:00 +0800")
    mails.append(Mail("alice", "Junk", d, render(
        std(f"{ew('代开发票', 'gb2312', 'b')} <fp@spam.example.net>", me, ew("代开各类发票", "gb2312", "b"), d,
            "fp-7781@spam.example.net", [("X-Spam-Flag", "YES"), *text_plain("gb2312", "base64")]),
        b64("您好！\n本公司代开各类发票，税点低，联系电话 13800138000。\n".encode("gb2312")))))

    d = when("2024-05-02 23:59:00 -0500")
    mails.append(Mail("alice", "Junk", d, render(
        std('"Luxury Deals" <deals@watches.example.net>', me, "Cheap Rolex watches - 90% off", d,
            "rolex-1@watches.example.net",
            [("X-Spam-Flag", "YES"), ("X-Spam-Status", "Yes, score=9.8 required=5.0"), *text_plain()]),
        "Replica Rolex watches, 90% off, free shipping worldwide. Visit http://watches.example.net/\n"),
        flags=""))

    d = when("2024-05-21 22:10:00 +0200")
    mails.append(Mail("alice", "Entwürfe", d, render(
        [("From", me), ("To", '"Hausverwaltung Huber" <huber@example.com>'),
         ("Subject", ew("Kündigung Mietvertrag Lagerraum 17", "utf-8")), ("Date", format_datetime(d)),
         ("Message-ID", "<draft-kuendigung.alice@example.org>"), ("MIME-Version", "1.0"),
         ("X-Mozilla-Draft-Info", "internal/draft; vcard=0; receipt=0; DSN=0; uuencode=0"),
         *text_plain("utf-8", "8bit")],
        "Sehr geehrte Frau Huber,\n\nhiermit kündige ich den Mietvertrag für den Lagerraum Nr. 17 fristgerecht zum "
        "31. August 2024.\n\n"), flags="DS"))

    d = when("2024-06-01 19:00:00 +0200")
    mails.append(Mail("alice", "Entwürfe", d, render(
        [("From", me), ("Date", format_datetime(d)), ("Message-ID", "<draft-notizen.alice@example.org>"),
         ("MIME-Version", "1.0"), *text_plain("utf-8", "8bit")],
        "Notizen: Klaus anrufen wegen Zürich-Abrechnung, Spesenbeleg Hotel Storchen fehlt noch.\n"), flags="D"))
    return mails


def bob_mails() -> list[Mail]:
    mails: list[Mail] = []
    me = BOB

    d = when("2024-02-05 08:30:00 +0100")
    mails.append(Mail("bob", "Sent", d, render(
        std(me, ALICE_HDR, ew("Protokoll Teamsitzung: Größe des Serverraums", "utf-8"), d,
            "protokoll-0205-draft.bob@example.org",
            [("Cc", CAROL), ("Bcc", '"Eve Schmidt" <eve@example.org>'), *text_plain("utf-8", "8bit")]),
        "Protokoll folgt heute Nachmittag mit dem Quartalsbericht als Anhang.\n\nBob\n")))

    d = when("2024-02-05 17:02:00 +0100")
    mails.append(Mail("bob", "INBOX", d, render(
        std(ALICE_HDR, me, ew("Re: Protokoll Teamsitzung: Größe des Serverraums", "utf-8"), d,
            "re-protokoll.alice@example.org",
            [("In-Reply-To", "<protokoll-0205.bob@example.org>"), *text_plain("utf-8", "8bit")]),
        "Danke, Bob! Ich kümmere mich um die Ausschreibung für die Racks.\n\nAlice\n"), flags="RS"))

    d = when("2024-03-02 03:14:07 +0000")
    mails.append(Mail("bob", "INBOX", d, render(
        std('"systemd on nas" <root@nas.example.org>', "admins@example.org", "[nas] nixos-upgrade.service failed",
            d, "unit-failure.48211.nas@nas.example.org",
            [("Auto-Submitted", "auto-generated"), *text_plain("utf-8", "8bit")]),
        "nixos-upgrade.service failed on host nas at Sat 2024-03-02 03:14:07 UTC.\n"
        "See 'journalctl -u nixos-upgrade.service' for details.\n")))

    d = when("2024-03-20 10:10:00 +0100")
    mails.append(Mail("bob", "INBOX", d, render(
        std('"Telco Mobile" <rechnung@telco.example.com>', me, "Invoice INV-2024-0201 (mobile phone, March)", d,
            "inv-2024-0201@telco.example.com", text_plain()),
        "Dear Bob Meier,\n\nyour invoice INV-2024-0201 for March is ready: EUR 29.90.\n"
        "Roaming Switzerland: EUR 4.20\n\nTelco Mobile\n")))

    d = when("2024-04-02 14:12:00 +0200")
    mails.append(Mail("bob", "Sent", d, render(
        std(me, ALICE_HDR, "Fwd: Espresso machine offer: CappuccinoMatic 3000", d,
            "fwd-espresso.bob@example.org", text_plain("utf-8", "8bit")),
        "Alice, see below \u2014 shall we order it for the kitchen?\n\n"
        "-------- Forwarded Message --------\nSubject: Espresso machine offer: CappuccinoMatic 3000\n"
        "From: Kaffee Direkt Sales <sales@example.com>\n\nthe CappuccinoMatic 3000 is available for EUR 1,899.\n")))

    d = when("2024-04-04 19:45:00 +0200")
    # Dirt: raw UTF-8 in From/Subject (no RFC 2047) and no Content-Type at all, so the body is "us-ascii".
    mails.append(Mail("bob", "INBOX", d, render(
        [("Return-Path", "<joerg@example.com>"), ("From", "Jörg Weiß <joerg@example.com>"), ("To", me),
         ("Subject", "Grüße vom Bodensee"), ("Date", format_datetime(d)),
         ("Message-ID", "<bodensee-0404.joerg@example.com>")],
        "Servus Bob,\n\ndas Wetter am Bodensee ist großartig, die Fähre nach Meersburg fährt wieder.\n\nJörg\n"),
        flags=""))

    d = when("2024-05-27 12:00:00 +0200")
    text = "Hi Bob,\n\nyour Fahrrad-Leasing contract (bike leasing) starts on June 1st.\nModel: Gazelle Ultimate.\n"
    html = ("<html><body><p>Hi Bob,</p><p>your <b>Fahrrad-Leasing</b> contract (bike leasing) starts on June 1st."
            "<br>Model: Gazelle Ultimate.</p></body></html>\n")
    alt = multipart("alt-bike-7", [
        render(text_plain(), text),
        render([("Content-Type", "text/html; charset=us-ascii"), ("Content-Transfer-Encoding", "7bit")], html),
    ])
    mails.append(Mail("bob", "INBOX", d, render(
        std('"HR" <hr@example.org>', me, "Fahrrad-Leasing", d, "bike-7@example.org",
            [("Content-Type", 'multipart/alternative; boundary="alt-bike-7"')]),
        alt)))
    return mails


# --------------------------------------------------------------------------------------------- the tree

# Per alice folder: Dovecot mailbox name -> (UIDVALIDITY, first UID, UIDs skipped as expunged, NEXTUID slack).
ALICE_FOLDERS: dict[str, tuple[int, int, set[int], int]] = {
    "INBOX": (1696150800, 1, {4, 8, 13, 14}, 0),
    "Sent": (1696150801, 1, set(), 0),
    "Archive": (1696150802, 1, {2}, 0),
    "Archive/2024": (1704067200, 1, set(), 0),
    "Trash": (1696150803, 5, {6, 7, 8}, 3),
    "Junk": (1696150804, 1, set(), 4),
    "Entwürfe": (1696150805, 3, set(), 0),
}
BOB_FOLDERS = ["INBOX", "Sent"]
SUBSCRIPTIONS = ["INBOX", "Sent", "Archive", "Archive.2024", "Trash", "Junk", "Entwürfe"]


def folder_dir(user_root: Path, mailbox: str) -> Path:
    if mailbox == "INBOX":
        return user_root
    return user_root / ("." + ".".join(mutf7(part) for part in mailbox.replace("/", ".").split(".")))


def delivered(mail: Mail) -> bytes:
    """The message as Dovecot's LMTP stores received mail: Return-Path, Delivered-To and Received prepended."""
    if mail.folder in ("Sent", "Entwürfe"):
        return mail.data
    found = re.search(rb"^From:.*?<([^>]+)>", mail.data, re.M)
    sender = found.group(1).decode() if found else ""
    rcpt = f"{mail.user}@example.org"
    lmtp_id = hashlib.md5(mail.data).hexdigest()[:22]
    received = (f"Received: from mx.example.org ([192.0.2.25])\n\tby {HOST} with LMTP\n\tid {lmtp_id}\n"
                f"\t(envelope-from <{sender}>)\n\tfor <{rcpt}>; {format_datetime(mail.date)}\n")
    return f"Return-Path: <{sender}>\nDelivered-To: {rcpt}\n{received}".encode() + mail.data


FIXED_MTIME = when("2024-06-03 12:00:00 +0200").timestamp()  # for uidlists, subscriptions, maildirfolder, ...


def file_name(mail: Mail, data: bytes, seq: int) -> str:
    ts = int(mail.date.timestamp())
    size = len(data)
    vsize = size + data.count(b"\n") - data.count(b"\r\n")
    usec = (ts * 7919 + seq * 104729) % 1_000_000
    pid = 1000 + (ts + seq) % 30000
    base = f"{ts}.M{usec}P{pid}.{HOST},S={size},W={vsize}"
    return base if mail.new else f"{base}:2,{''.join(sorted(mail.flags))}"


def write_tree(out: Path) -> list[tuple[Path, int]]:
    mails = alice_inbox() + alice_others() + bob_mails()
    written: list[tuple[Path, int]] = []
    for user, folders in (("alice", list(ALICE_FOLDERS)), ("bob", BOB_FOLDERS)):
        root = out / "example.org" / user
        for mailbox in folders:
            fdir = folder_dir(root, mailbox)
            for sub in ("cur", "new", "tmp"):
                (fdir / sub).mkdir(parents=True, exist_ok=True)
            if mailbox != "INBOX":
                (fdir / "maildirfolder").write_bytes(b"")
            box = sorted((m for m in mails if m.user == user and m.folder == mailbox), key=lambda m: m.date)
            uidlines: list[str] = []
            uid = ALICE_FOLDERS[mailbox][1] if user == "alice" else 1
            skipped = ALICE_FOLDERS[mailbox][2] if user == "alice" else set()
            for seq, mail in enumerate(box):
                while uid in skipped:
                    uid += 1
                data = delivered(mail)
                name = file_name(mail, data, seq)
                path = fdir / ("new" if mail.new else "cur") / name
                path.write_bytes(data)
                stamp = mail.date.timestamp()
                os.utime(path, (stamp, stamp))
                written.append((path, uid))
                base = name.split(":2,", 1)[0]
                if user == "alice" and mailbox == "Archive/2024" and seq == 1:
                    # As written after a dsync migration: an extension field (message GUID) before the name.
                    guid = hashlib.md5(base.encode()).hexdigest()
                    uidlines.append(f"{uid} G{guid} :{base}")
                else:
                    uidlines.append(f"{uid} :{base}")
                uid += 1
            if user == "alice":
                validity, _, _, slack = ALICE_FOLDERS[mailbox]
                guid = hashlib.md5(f"{user}@example.org/{mailbox}".encode()).hexdigest()
                header = f"3 V{validity} N{uid + slack} G{guid}"
                (fdir / "dovecot-uidlist").write_text("\n".join([header, *uidlines]) + "\n", encoding="ascii")
            for sub in ("cur", "new", "tmp"):
                if not any((fdir / sub).iterdir()):
                    (fdir / sub / KEEP).write_bytes(b"")
        if user == "alice":
            names = [mutf7(name) for name in SUBSCRIPTIONS]
            (root / "subscriptions").write_text("\n".join(names) + "\n", encoding="ascii")
    for path in out.rglob("*"):
        if path.is_file() and path.parent.name not in ("cur", "new") or path.name == KEEP:
            os.utime(path, (FIXED_MTIME, FIXED_MTIME))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "vmail", help="target directory (default: sample/vmail)")
    args = parser.parse_args(argv)
    out: Path = args.out
    if out.exists():
        if not (out / "example.org").is_dir() and any(out.iterdir()):
            print(f"{out}: exists and does not look like a generated sample; not deleting it", file=sys.stderr)
            return 1
        shutil.rmtree(out)
    written = write_tree(out)
    total = sum(path.stat().st_size for path, _ in written)
    print(f"{out}: {len(written)} messages, {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
