"""Build Dovecot-style Maildir++ trees in tests.

    md = MailDir(tmp_path / "vmail" / "example.org" / "alice")
    uid = md.deliver("INBOX", subject="Invoice 17", body="please pay")
    md.deliver("Archive/2024", raw=b"Subject: x\\n\\nraw bytes", flags="RS")
    md.expunge("INBOX", uid)

With `uidlist=True` (the default) every folder gets a `dovecot-uidlist` in Dovecot's v3 format and deliver()
returns the UID written there. With `uidlist=False` no uidlist is written and deliver() returns the message's
1-based position among the folder's files in sorted-basename order: the UID ftsd is expected to assign when it
first scans the folder (later expunges shift positions, while UIDs ftsd already assigned stay put).

File names follow Dovecot: `<unix time>.M<usecs>P<pid>.<host>,S=<size>,W=<size with CRLF>:2,<flags>`; the
time part increases by one second per delivery, so sorted-basename order is delivery order. Each file's mtime
is set to its Date: header time.
"""

from __future__ import annotations

import base64
import email.policy
import os
import re
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

HOST = "test.example.org"
START_TIME = 1_704_067_200  # 2024-01-01 00:00:00 UTC
START_UIDVALIDITY = 1_700_000_000
UIDLIST = "dovecot-uidlist"
_UIDLIST_LINE = re.compile(r"^(\d+)(?: [^:]*)? :(.+)$")


def mutf7_encode(name: str) -> str:
    """IMAP modified UTF-7 (RFC 3501 5.1.3): "Entwürfe" -> "Entw&APw-rfe"."""
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


def folder_dirname(name: str) -> str:
    """Maildir++ directory of a mailbox name relative to the user root: "" for INBOX, ".A.B" for "A/B" or "A.B"."""
    if name.upper() == "INBOX":
        return ""
    parts = [p for p in re.split(r"[/.]", name) if p]
    if not parts:
        raise ValueError(f"bad mailbox name {name!r}")
    return "." + ".".join(mutf7_encode(p) for p in parts)


def basename(filename: str) -> str:
    """A Maildir file name without its info part (":2,FLAGS"): what dovecot-uidlist records."""
    return filename.split(":", 1)[0]


class MailDir:
    """One user's Maildir++ tree (INBOX at `root`, other folders as `.Name` below it)."""

    def __init__(self, root: Path, uidlist: bool = True, *, host: str = HOST, start_time: int = START_TIME) -> None:
        self.root = Path(root)
        self.uidlist = uidlist
        self.host = host
        self._clock = start_time
        self._seq = 0
        self._validity = START_UIDVALIDITY
        # Without a uidlist: mailbox dir -> {uid: basename} as returned by deliver().
        self._assigned: dict[Path, dict[int, str]] = {}
        self.folder("INBOX")

    # ------------------------------------------------------------------------------------------- folders

    def folder(self, name: str) -> Path:
        """The folder's directory, created with cur/, new/ and tmp/ (and `maildirfolder` for non-INBOX)."""
        path = self.root / folder_dirname(name) if folder_dirname(name) else self.root
        for sub in ("cur", "new", "tmp"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        if path != self.root:
            (path / "maildirfolder").touch()
        return path

    def rename(self, old: str, new: str) -> Path:
        """Rename a folder directory (its dovecot-uidlist goes with it, as in Dovecot). Returns the new path."""
        src, dst = self.root / folder_dirname(old), self.root / folder_dirname(new)
        if src == self.root or dst == self.root:
            raise ValueError("INBOX cannot be renamed")
        if dst.exists():
            raise FileExistsError(dst)
        src.rename(dst)
        if src in self._assigned:
            self._assigned[dst] = self._assigned.pop(src)
        return dst

    # ------------------------------------------------------------------------------------------- uidlist

    def uidlist_path(self, mailbox: str) -> Path:
        return self.folder(mailbox) / UIDLIST

    def read_uidlist(self, mailbox: str) -> tuple[dict[str, str], dict[int, str]]:
        """({"V": ..., "N": ..., "G": ...}, {uid: basename}) of a folder's dovecot-uidlist."""
        lines = self.uidlist_path(mailbox).read_text(encoding="utf-8").splitlines()
        fields = lines[0].split()
        if fields[0] != "3":
            raise ValueError(f"not a v3 dovecot-uidlist: {lines[0]!r}")
        header = {f[0]: f[1:] for f in fields[1:]}
        entries: dict[int, str] = {}
        for line in lines[1:]:
            match = _UIDLIST_LINE.match(line)
            if match:
                entries[int(match.group(1))] = match.group(2)
        return header, entries

    def _write_uidlist(self, mailbox: str, header: dict[str, str], entries: dict[int, str]) -> None:
        head = " ".join(["3", *(f"{k}{v}" for k, v in header.items())])
        body = "".join(f"{uid} :{name}\n" for uid, name in sorted(entries.items()))
        path = self.uidlist_path(mailbox)
        tmp = path.with_name(UIDLIST + ".lock")
        tmp.write_text(head + "\n" + body, encoding="utf-8")
        tmp.replace(path)

    def _load_or_create_uidlist(self, mailbox: str) -> tuple[dict[str, str], dict[int, str]]:
        if self.uidlist_path(mailbox).exists():
            return self.read_uidlist(mailbox)
        self._validity += 1
        return {"V": str(self._validity), "N": "1", "G": uuid.uuid4().hex}, {}

    def set_uidvalidity(self, mailbox: str, value: int) -> None:
        """Rewrite the header's UIDVALIDITY (as after Dovecot lost or recreated the uidlist)."""
        header, entries = self._load_or_create_uidlist(mailbox)
        header["V"] = str(value)
        self._write_uidlist(mailbox, header, entries)

    # ------------------------------------------------------------------------------------------- messages

    def _files(self, mailbox: str) -> dict[str, Path]:
        """basename -> path of every message file in cur/ and new/ (dot files are not messages)."""
        folder = self.folder(mailbox)
        return {basename(p.name): p for sub in ("cur", "new") for p in (folder / sub).iterdir()
                if not p.name.startswith(".")}

    def deliver(
        self,
        mailbox: str = "INBOX",
        *,
        subject: str = "",
        body: str = "",
        sender: str = "alice@example.org",
        to: str = "bob@example.org",
        cc: str | None = None,
        bcc: str | None = None,
        headers: dict[str, str] | None = None,
        html: str | None = None,
        attachments: list[tuple[str, str, bytes]] | tuple[tuple[str, str, bytes], ...] = (),
        raw: bytes | None = None,
        flags: str = "S",
        new: bool = False,
        charset: str = "utf-8",
    ) -> int:
        """Write one message into `mailbox`; returns its UID (see the module docstring for uidlist=False)."""
        folder = self.folder(mailbox)
        self._clock += 1
        self._seq += 1
        when = self._clock
        data = raw if raw is not None else self._compose(
            when, subject=subject, body=body, sender=sender, to=to, cc=cc, bcc=bcc, headers=headers or {},
            html=html, attachments=attachments, charset=charset)
        size = len(data)
        vsize = size + data.count(b"\n") - data.count(b"\r\n")
        base = f"{when}.M{(self._seq * 104729) % 1_000_000}P{10000 + self._seq}.{self.host},S={size},W={vsize}"
        name = base if new else f"{base}:2,{''.join(sorted(set(flags)))}"
        path = folder / ("new" if new else "cur") / name
        tmp = folder / "tmp" / base
        tmp.write_bytes(data)
        os.utime(tmp, (when, when))
        tmp.rename(path)

        if self.uidlist:
            header, entries = self._load_or_create_uidlist(mailbox)
            uid = int(header["N"])
            entries[uid] = base
            header["N"] = str(uid + 1)
            self._write_uidlist(mailbox, header, entries)
            return uid
        uid = sorted(self._files(mailbox)).index(base) + 1
        self._assigned.setdefault(folder, {})[uid] = base
        return uid

    def _compose(self, when: int, *, subject: str, body: str, sender: str, to: str, cc: str | None,
                 bcc: str | None, headers: dict[str, str], html: str | None,
                 attachments: list[tuple[str, str, bytes]] | tuple[tuple[str, str, bytes], ...],
                 charset: str) -> bytes:
        msg = EmailMessage(policy=email.policy.default)
        msg["From"] = sender
        msg["To"] = to
        if cc:
            msg["Cc"] = cc
        if bcc:
            msg["Bcc"] = bcc
        msg["Subject"] = subject
        msg["Date"] = format_datetime(datetime.fromtimestamp(when, UTC))
        msg["Message-ID"] = f"<{when}.{self._seq}@{self.host}>"
        for name, value in headers.items():
            if name in msg:
                msg.replace_header(name, value)
            else:
                msg[name] = value
        if html is not None and not body:
            msg.set_content(html, subtype="html", charset=charset)
        else:
            msg.set_content(body, charset=charset)
            if html is not None:
                msg.add_alternative(html, subtype="html", charset=charset)
        for filename, mime_type, content in attachments:
            maintype, _, subtype = mime_type.partition("/")
            msg.add_attachment(content, maintype=maintype, subtype=subtype or "octet-stream", filename=filename)
        for n, part in enumerate(msg.walk()):  # fixed boundaries: byte-for-byte reproducible messages
            if part.is_multipart():
                part.set_boundary(f"=_{self._seq}_{n}_boundary")
        return msg.as_bytes(policy=email.policy.default)

    def path_of(self, mailbox: str, uid: int) -> Path:
        """The current file of a message (flags may have changed its name). Raises KeyError if unknown."""
        if self.uidlist:
            _, entries = self.read_uidlist(mailbox)
            base = entries[uid]
        else:
            base = self._assigned.get(self.folder(mailbox), {})[uid]
        try:
            return self._files(mailbox)[base]
        except KeyError:
            raise KeyError(f"{mailbox} UID {uid}: file {base} is gone") from None

    def set_flags(self, mailbox: str, uid: int, flags: str) -> Path:
        """Rename the message file to carry `flags` (moving it to cur/, as an IMAP client's STORE would)."""
        old = self.path_of(mailbox, uid)
        new = self.folder(mailbox) / "cur" / f"{basename(old.name)}:2,{''.join(sorted(set(flags)))}"
        old.rename(new)
        return new

    def expunge(self, mailbox: str, uid: int) -> None:
        """Delete a message file and drop its dovecot-uidlist line (NEXTUID stays, leaving a gap)."""
        self.path_of(mailbox, uid).unlink()
        if self.uidlist:
            header, entries = self.read_uidlist(mailbox)
            del entries[uid]
            self._write_uidlist(mailbox, header, entries)
        else:
            del self._assigned[self.folder(mailbox)][uid]

    def messages(self, mailbox: str = "INBOX") -> list[Path]:
        """The folder's message files in sorted-basename order."""
        files = self._files(mailbox)
        return [files[name] for name in sorted(files)]
