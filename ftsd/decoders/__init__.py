"""Decoders: one MIME part (bytes + content type + file name) -> text.

Stage (2b) of the flow. `charset` and `html` serve every text part and run in-process; the attachment
decoders (PDF, office documents, calendar, the external command, ...) are listed in REGISTRY, found by MIME
type, else by file extension for parts sent as application/octet-stream, else by magic bytes. A decoder's
module is imported only when a part needs it (in the sandbox process for the sandboxed ones); a library that
is not installed (the `attachments` extra) makes that part skipped with the reason.

`decode_attachment()` is the one entry point message.py uses for non-text parts; it never raises: a part
that cannot be decoded comes back with `skipped` set to the reason, and the rest of the message is indexed.
Decoders with `sandboxed=True` (parsers of complex binary formats, the external command) run in a child
process with memory, CPU and wall-clock limits (see sandbox.py); cheap stdlib ones (csv, ics) run here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ftsd.errors import DecodeError
from ftsd.settings import DecoderSettings

# A decoder turns the bytes of one part into text: (data, max_chars) -> text. Text past max_chars (the setting
# fts.max_text_chars) is cut by the caller, not skipped; a decoder may stop early once past it. It may raise
# DecodeError (or anything: the caller catches).
Decoder = Callable[[bytes, int], str]


@dataclass(frozen=True, slots=True)
class Decoded:
    """What became of one attachment: its text, the decoder that produced it, or why it was skipped."""

    text: str
    decoder: str | None = None
    skipped: str | None = None


_OOXML = "application/vnd.openxmlformats-officedocument."
_ODF = "application/vnd.oasis.opendocument."


@dataclass(frozen=True, slots=True)
class DecoderSpec:
    """One attachment decoder: its name, where its function lives, what it reads, where it runs."""

    name: str
    function: str  # "module:function" inside ftsd.decoders, imported on first use
    types: tuple[str, ...]
    extensions: tuple[str, ...]
    sandboxed: bool = True  # parsers of complex binary formats run in the sandbox process

    def load(self) -> Decoder:
        """The decoder function. Its module (and the library behind it) is imported here, on first use, so
        that only the process that decodes -- the sandbox -- pays for pypdfium2, olefile and the like."""
        module, _, name = self.function.partition(":")
        fn: Decoder = getattr(importlib.import_module(f"ftsd.decoders.{module}"), name)
        return fn


# The registry: a constant. (Decoders used to register themselves on import; importing every library in every
# process only to fill a dict cost start-up time and hid a missing library until the first part needed it.)
REGISTRY: tuple[DecoderSpec, ...] = (
    DecoderSpec("pdf", "pdf:pdf_text", ("application/pdf", "application/x-pdf", "application/acrobat"), (".pdf",)),
    DecoderSpec("docx", "office:docx_text", (_OOXML + "wordprocessingml.document", _OOXML + "wordprocessingml.template",
                "application/vnd.ms-word.document.macroenabled.12"), (".docx", ".dotx", ".docm")),
    DecoderSpec("xlsx", "office:xlsx_text", (_OOXML + "spreadsheetml.sheet", _OOXML + "spreadsheetml.template",
                "application/vnd.ms-excel.sheet.macroenabled.12"), (".xlsx", ".xltx", ".xlsm")),
    DecoderSpec("pptx", "office:pptx_text", (_OOXML + "presentationml.presentation",
                _OOXML + "presentationml.slideshow", "application/vnd.ms-powerpoint.presentation.macroenabled.12"),
                (".pptx", ".ppsx", ".pptm")),
    DecoderSpec("odf", "office:odf_text", (_ODF + "text", _ODF + "spreadsheet", _ODF + "presentation",
                _ODF + "graphics"), (".odt", ".ods", ".odp", ".odg")),
    DecoderSpec("doc", "legacy:doc_text", ("application/msword", "application/vnd.ms-word"), (".doc", ".dot")),
    DecoderSpec("xls", "legacy:xls_text", ("application/vnd.ms-excel", "application/excel", "application/x-excel"),
                (".xls", ".xlt")),
    DecoderSpec("ppt", "legacy:ppt_text", ("application/vnd.ms-powerpoint", "application/mspowerpoint"),
                (".ppt", ".pps")),
    DecoderSpec("rtf", "rtf:rtf_text", ("application/rtf", "text/rtf", "application/x-rtf", "text/richtext"),
                (".rtf",)),
    # stdlib-only, linear and capped at fts.max_text_chars: cheap enough to run in the indexer itself
    DecoderSpec("ics", "ics:ics_text", ("text/calendar", "application/ics", "text/x-vcalendar"),
                (".ics", ".ifb", ".vcs"), sandboxed=False),
    DecoderSpec("csv", "csvtext:csv_text", ("text/csv", "text/tab-separated-values", "application/csv",
                "text/comma-separated-values"), (".csv", ".tsv"), sandboxed=False),
)
BY_NAME: Mapping[str, DecoderSpec] = MappingProxyType({spec.name: spec for spec in REGISTRY})
DECODERS: Mapping[str, DecoderSpec] = MappingProxyType({t: spec for spec in REGISTRY for t in spec.types})
# extension i of a decoder maps to its type i (types repeated); the first decoder to list an extension has it
EXTENSIONS: Mapping[str, str] = MappingProxyType({
    ext: spec.types[i % len(spec.types)] for spec in reversed(REGISTRY) for i, ext in enumerate(spec.extensions)
})

# Magic bytes -> MIME type, for application/octet-stream parts without a usable file name.
_MAGIC = ((b"%PDF-", "application/pdf"), (b"{\\rtf", "application/rtf"), (b"BEGIN:VCALENDAR", "text/calendar"))


def _extension(filename: str | None) -> str:
    return "." + filename.rsplit(".", 1)[1].lower() if filename and "." in filename else ""


def find_decoder(content_type: str, filename: str | None, data: bytes = b"") -> DecoderSpec | None:
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


def decode_attachment(data: bytes, content_type: str, filename: str | None, limits: DecoderSettings,
                      max_chars: int) -> Decoded:
    """Text of one attachment (at most `max_chars`: fts.max_text_chars), or the reason it was skipped. Never
    raises."""
    if not limits.attachments:
        return Decoded("", skipped="attachments disabled")
    if len(data) > limits.max_part_bytes:
        return Decoded("", skipped=f"larger than decoders.max_part_bytes ({len(data)} bytes)")
    # The command comes first: an admin who lists application/pdf there wants it over the built-in decoder.
    command = wants_command(limits, content_type, filename)
    spec = None if command else find_decoder(content_type, filename, data)
    if spec is None and not command:
        return Decoded("", skipped=f"no decoder for {content_type}")
    name = spec.name if spec else "external"
    try:
        if spec is None or spec.sandboxed:
            from ftsd.decoders import sandbox  # here: `python -m ftsd.decoders.sandbox` must not import itself

            result = sandbox.run(name, data, content_type, limits, max_chars)
        else:
            result = Decoded(spec.load()(data, max_chars), decoder=name)
    except DecodeError as exc:
        return Decoded("", decoder=name, skipped=str(exc))
    except Exception as exc:  # a decoder bug must cost one part, never the message
        return Decoded("", decoder=name, skipped=f"{type(exc).__name__}: {exc}")
    if len(result.text) > max_chars:
        result = Decoded(result.text[:max_chars], result.decoder, result.skipped)
    return result
