"""Hostile messages, generated: the parser triggers of issue 12 and seeded damage to real mail.

Every generated message starts with its `Subject:` line, which carries a token of its own (`subject_token(i)`)
and is never damaged: whatever happens to the rest, SUBJECT <token> must still find the message.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from pathlib import Path

_SUBJECT = re.compile(rb"^Subject:[^\n]*\n(?:[ \t][^\n]*\n)*", re.IGNORECASE | re.MULTILINE)


def subject_token(i: int) -> str:
    return f"hostiletok{i:05d}"


def deep_multipart(levels: int, token: str) -> bytes:
    out = [f"Subject: deep {token}\nContent-Type: multipart/mixed; boundary=b0\n\n".encode()]
    for i in range(1, levels):
        out.append(b"--b%d\nContent-Type: multipart/mixed; boundary=b%d\n\n" % (i - 1, i))
    out.append(b"--b%d\nContent-Type: text/plain\n\ndeepleaf\n" % (levels - 1))
    return b"".join(out)


def deep_rfc822(levels: int, token: str) -> bytes:
    return f"Subject: nested {token}\n".encode() + b"Content-Type: message/rfc822\n\n" * levels + b"\nleaf\n"


def many_parts(parts: int, token: str) -> bytes:
    head = f"Subject: parts {token}\nContent-Type: multipart/mixed; boundary=p\n\n".encode()
    return head + b"--p\n\nx\n" * parts + b"--p--\n"


TRIGGERS: dict[str, Callable[[str], bytes]] = {
    "nul-charset": lambda t: f"Subject: {t}\nContent-Type: text/plain; charset=\"utf\0-8\"\n\nbody\n".encode(),
    "nul-encoded-word": lambda t: f"Subject: {t} =?utf\0-8?Q?x?=\nFrom: =?ut\0f-8?B?eA==?= <a@b.c>\n\nb\n".encode(),
    "nul-rfc2231": lambda t: (f"Subject: {t}\nContent-Type: text/plain; charset*=utf\0-8''x\n"
                              "Content-Disposition: attachment; filename*=utf\0-8''a.txt\n\nbody\n").encode(),
    "nul-charset-multipart": lambda t: (
        f"Subject: {t}\nContent-Type: multipart/mixed; boundary=z\n\n--z\n"
        "Content-Type: text/html; charset=\"\0\"\n\n<b>x</b>\n--z\nContent-Type: text/plain; charset=latin\0\n"
        "Content-Transfer-Encoding: quoted-printable\n\n=E9t=E9\n--z--\n").encode(),
    "deep-multipart": lambda t: deep_multipart(1000, t),
    "deep-rfc822": lambda t: deep_rfc822(1000, t),
    "deep-multipart-60": lambda t: deep_multipart(60, t),
    "many-parts": lambda t: many_parts(30_000, t),
    "bad-base64-rfc822": lambda t: (f"Subject: {t}\nContent-Type: message/rfc822\nContent-Transfer-Encoding: base64"
                                    "\n\n!!!!not base64\x00\n").encode(),
    "long-header-line": lambda t: f"Subject: {t}\nX-Long: {'a' * 2_000_000}\n\nbody\n".encode(),
    "no-body-no-blank": lambda t: f"Subject: {t}\nContent-Type: multipart/mixed; boundary=".encode(),
    "binary-garbage": lambda t: f"Subject: {t}\n".encode() + bytes(range(256)) * 40,
}


def with_subject_first(raw: bytes, token: str) -> tuple[bytes, int]:
    """The message with its Subject line (plus the token) moved to the top; returns (message, protected bytes)."""
    match = _SUBJECT.search(raw.split(b"\n\n", 1)[0] + b"\n")
    subject = match.group().rstrip(b"\n") if match else b"Subject:"
    rest = raw[: match.start()] + raw[match.end():] if match else raw
    line = subject.replace(b"\n", b"") + b" " + token.encode() + b"\n"
    return line + rest, len(line)


def mutate(raw: bytes, protected: int, rng: random.Random) -> tuple[bytes, str]:
    """Seeded damage after the first `protected` bytes: byte flips, a truncation, NULs, a NUL in a charset."""
    data = bytearray(raw)
    kind = rng.choice(["flip", "truncate", "nul", "charset-nul", "mixed"])
    span = len(data) - protected
    if span <= 1:
        return bytes(data), "none"
    if kind in ("flip", "mixed"):
        for _ in range(rng.randint(1, 20)):
            data[protected + rng.randrange(span)] = rng.randrange(256)
    if kind in ("nul", "mixed"):
        for _ in range(rng.randint(1, 10)):
            data.insert(protected + rng.randrange(len(data) - protected), 0)
    if kind == "charset-nul":
        at = data.find(b"charset=", protected)
        if at < 0:
            data[protected:protected] = b'Content-Type: text/plain; charset="utf-8"\n'
            at = data.find(b"charset=", protected)
        data.insert(at + 10, 0)
    if kind in ("truncate", "mixed"):
        del data[protected + rng.randrange(len(data) - protected):]
    return bytes(data), kind


def corpus_sample(corpus: Path, count: int, seed: int) -> Iterator[bytes]:
    """`count` message files from all folders of the corpus Maildir, chosen with `seed`."""
    files = sorted(p for p in corpus.rglob("*") if p.is_file() and p.parent.name == "cur")
    for path in random.Random(seed).sample(files, count):
        yield path.read_bytes()
