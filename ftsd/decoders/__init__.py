"""Decoders: one MIME part (bytes + content type + file name) -> text.

Stage (2b) of the flow. `charset` and `html` serve every text part and run in-process; the attachment
decoders (PDF, office documents, calendar, the external command, ...) register themselves in DECODERS by
MIME type, and in EXTENSIONS by file extension for parts sent as application/octet-stream. An optional
library that fails to import simply leaves its types unregistered (httpx's optional-decoder pattern).

`decode_attachment()` is the one entry point message.py uses for non-text parts; it never raises: a part
that cannot be decoded comes back with `skipped` set to the reason, and the rest of the message is indexed.
Decoders registered with `sandboxed=True` (parsers of complex binary formats, the external command) run in
a child process with memory, CPU and wall-clock limits (see sandbox.py); cheap ones (csv, ics) run here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from ftsd.errors import DecodeError
from ftsd.settings import DecoderSettings

# A decoder turns the bytes of one part into text. It may raise DecodeError (or anything: the caller catches).
Decoder = Callable[[bytes], str]

# Text kept per attachment: longer text is cut here (not skipped). Decoders may stop early once past it.
MAX_TEXT_CHARS = 2_000_000


@dataclass(frozen=True, slots=True)
class Decoded:
    """What became of one attachment: its text, the decoder that produced it, or why it was skipped."""

    text: str
    decoder: str | None = None
    skipped: str | None = None


DECODERS: dict[str, tuple[str, Decoder]] = {}   # MIME type -> (decoder name, function)
EXTENSIONS: dict[str, str] = {}                 # ".pdf" -> "application/pdf"
BY_NAME: dict[str, Decoder] = {}                # "pdf" -> function: how the sandbox finds a decoder
SANDBOXED: set[str] = set()                     # names of decoders that run in the sandbox

# Magic bytes -> MIME type, for application/octet-stream parts without a usable file name.
_MAGIC = ((b"%PDF-", "application/pdf"), (b"{\\rtf", "application/rtf"), (b"BEGIN:VCALENDAR", "text/calendar"))


def register(name: str, types: list[str], extensions: list[str], fn: Decoder, *, sandboxed: bool = False) -> None:
    """Make `fn` the decoder for these MIME types and file extensions (extension i maps to type i)."""
    for mime in types:
        DECODERS[mime] = (name, fn)
    for ext, mime in zip(extensions, types * len(extensions), strict=False):
        EXTENSIONS.setdefault(ext, mime)
    BY_NAME[name] = fn
    if sandboxed:
        SANDBOXED.add(name)


def _extension(filename: str | None) -> str:
    return "." + filename.rsplit(".", 1)[1].lower() if filename and "." in filename else ""


def find_decoder(content_type: str, filename: str | None, data: bytes = b"") -> tuple[str, Decoder] | None:
    """The decoder for a part, by MIME type, else by the file name's extension, else by magic bytes."""
    found = DECODERS.get(content_type.lower())
    if found is None:
        mime = EXTENSIONS.get(_extension(filename))
        found = DECODERS.get(mime) if mime else None
    if found is None:
        head = data[:64].lstrip()
        found = next((DECODERS.get(mime) for magic, mime in _MAGIC if head.startswith(magic)), None)
    return found


def wants_command(limits: DecoderSettings, content_type: str, filename: str | None) -> bool:
    """Whether the external command is configured for this part (MIME type or `*.ext` in command_types)."""
    if not limits.command:
        return False
    ext = _extension(filename)
    for pattern in limits.command_types:
        pattern = pattern.strip().lower()
        if pattern == content_type.lower() or (pattern.startswith("*.") and ext and pattern[1:] == ext):
            return True
    return False


def decode_attachment(data: bytes, content_type: str, filename: str | None, limits: DecoderSettings) -> Decoded:
    """Text of one attachment, or the reason it was skipped. Never raises."""
    if not limits.attachments:
        return Decoded("", skipped="attachments disabled")
    if len(data) > limits.max_part_bytes:
        return Decoded("", skipped=f"larger than decoders.max_part_bytes ({len(data)} bytes)")
    # The command comes first: an admin who lists application/pdf there wants it over the built-in decoder.
    name = "external" if wants_command(limits, content_type, filename) else None
    fn: Decoder | None = None
    if name is None:
        found = find_decoder(content_type, filename, data)
        if found is None:
            return Decoded("", skipped=f"no decoder for {content_type}")
        name, fn = found
    try:
        if fn is None or name in SANDBOXED:
            from ftsd.decoders import sandbox  # here: `python -m ftsd.decoders.sandbox` must not import itself

            result = sandbox.run(name, data, content_type, limits)
        else:
            result = Decoded(fn(data), decoder=name)
    except DecodeError as exc:
        return Decoded("", decoder=name, skipped=str(exc))
    except Exception as exc:  # a decoder bug must cost one part, never the message
        return Decoded("", decoder=name, skipped=f"{type(exc).__name__}: {exc}")
    if len(result.text) > MAX_TEXT_CHARS:
        result = Decoded(result.text[:MAX_TEXT_CHARS], result.decoder, result.skipped)
    return result


# Importing a decoder module registers it; one whose library is missing is left out.
for _module in ("pdf", "office", "legacy", "rtf", "ics", "csvtext"):
    try:
        importlib.import_module(f"ftsd.decoders.{_module}")
    except ImportError:
        pass
