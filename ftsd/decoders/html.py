"""HTML -> its visible text: tags dropped, script/style/title/template content dropped, entities resolved, block
elements turned into line breaks so that words of adjacent cells or paragraphs do not run together.

libxml2 (through lxml) parses; a walk over its tree collects the text. This gives the text of the earlier
`html.parser` event stream (kept below as the fallback) on the HTML parts of the SpamAssassin and openbmc corpora,
except where the new text is what a browser shows (bench/results/html-equivalence.md). What the tree walk adds to
stay equal to the event stream:
- the raw-text elements of HTML5 (iframe, noembed, noframes, xmp, plaintext, textarea) hold their content as one
  string; their markup is read again as HTML (the stream saw it as tags), to _MAX_REREAD levels;
- a comment still open at the end of the document (`<!--#rotate>` in spam) hides nothing: its opener is text and
  what follows it is read as HTML, as the stream did;
- content after `</html>` becomes further top-level trees, all walked;
- an end tag of a block element that libxml2 drops as stray (`a</p>b`, `x</br>y`) still separates words;
- a tag cut off by the end of the part (`<a href=http://...` in spam) stays text, as in the stream;
- libxml2 gives up past 2048 nested elements (`<font>` x 5,000, unclosed): such a document is read by the stream
  parser instead, which needs no depth.

<head> is handled the way browsers do: a missing </head> (common in spam and generated newsletters) hides nothing
but title, style and script, not the whole message.
"""

from __future__ import annotations

import html as htmllib
import logging
import re
from html.parser import HTMLParser

from lxml import etree

_HIDDEN = frozenset({"script", "style", "title", "template"})
_HEAD_CONTENT = frozenset({"base", "basefont", "bgsound", "link", "meta", "noscript", "object", "script", "style",
                           "template", "title"})
_BLOCK = frozenset({
    "address", "article", "aside", "blockquote", "br", "caption", "center", "dd", "div", "dl", "dt", "fieldset",
    "figcaption", "figure", "footer", "form", "frame", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "iframe",
    "li", "main", "nav", "ol", "option", "p", "pre", "section", "select", "table", "tbody", "td", "textarea",
    "tfoot", "th", "thead", "tr", "ul", "body", "html",
})
_FRAGMENT_BLOCK = _BLOCK - {"html", "body"}
# Elements whose content libxml2's HTML5 tokeniser keeps as one string; the markup inside is read again as HTML.
_RAW_TEXT = frozenset({"iframe", "noembed", "noframes", "xmp", "plaintext", "textarea"})
# `<iframe><iframe>...`: each level is read again, the deepest as it is (bounds the work to ~_MAX_REREAD x the input)
_MAX_REREAD = 3
_EVENTS = ("start", "end", "comment")
# The end tag of a block element breaks the line even where libxml2 drops it as stray (`a</p>b`, `x</br>y`, `</td>`
# outside a table): a line break put after each one keeps the words apart, as in the event stream. Searched in the
# ASCII-lowered UTF-8 bytes (same offsets, 4x faster than a case-insensitive str pattern); `[^<>]*` keeps the scan
# linear on `</p</p</p...`.
_BLOCK_END = re.compile((r"</(?:" + "|".join(sorted(_BLOCK)) + r")\b[^<>]*>").encode())


def _parser() -> etree.HTMLParser:
    # huge_tree: nesting to 2048 levels (not 256) and text nodes over 10 MB; the HTML parser expands no entity
    # declarations, so this opens no entity-expansion attack.
    return etree.HTMLParser(encoding="utf-8", no_network=True, default_doctype=False, huge_tree=True)


def _unclosed_comment(comment: str) -> tuple[str, str]:
    """(literal text, markup to read) of a comment open at the end of a document: the opener up to the first `>`
    (or `<`) is text and the rest is markup, as html.parser read it."""
    end = comment.find(">")
    if end < 0:
        end = comment.find("<")
    if end < 0:
        return "<!--" + comment, ""
    cut = end + 1 if comment[end] == ">" else end
    return "<!--" + comment[:cut], comment[cut:]


def _tree_text(markup: str, depth: int) -> str | None:
    """The visible text through libxml2; None when libxml2 gave up on the document (fatal error: nesting)."""
    parser = _parser()
    data = _with_breaks(markup.encode("utf-8", "surrogatepass"))
    try:
        root = etree.fromstring(data, parser)
    except etree.ParserError:  # nothing but white space
        return ""
    if parser.error_log.filter_from_fatals():
        return None
    if root is None:
        return ""
    out: list[str] = []
    hidden = 0
    blocks = _BLOCK if depth == 0 else _FRAGMENT_BLOCK  # a fragment read again has no <html>/<body> of its own
    last_comment: str | None = None  # text of a comment with nothing after it so far
    last_text = ""  # the last text node, shown or hidden
    for top in (root, *root.itersiblings()):
        if not isinstance(top.tag, str):  # a comment beside the root (after </html>): iterwalk takes only elements
            last_comment = None if hidden else (top.text or "")
            last_text = top.text or last_text
            continue
        for event, el in etree.iterwalk(top, events=_EVENTS):
            tag = el.tag
            if event == "start":
                last_comment = None
                last_text = el.text or last_text
                if tag in _HIDDEN:
                    hidden += 1
                    continue
                if hidden:
                    continue
                if tag in blocks:
                    out.append("\n")
                elif tag == "img":
                    alt = el.get("alt")
                    if alt:
                        out.append(f" {alt} ")
                text = el.text
                if text:
                    out.append(_text(text, depth + 1) if tag in _RAW_TEXT and depth < _MAX_REREAD else text)
                continue
            if event == "comment":
                last_comment = None if hidden else (el.text or "")
                last_text = el.text or last_text
            elif tag in _HIDDEN:
                hidden -= 1
            elif not hidden and tag in blocks:
                out.append("\n")
            tail = el.tail
            if tail:
                last_text = tail
            if tail and not hidden:
                out.append(tail)
                last_comment = None
    if last_comment is not None and _newlines(data.decode("utf-8", "surrogatepass")).endswith("<!--" + last_comment):
        literal, rest = _unclosed_comment(last_comment)
        out.append(literal)
        if rest:
            out.append(_text(rest, depth + 1) if depth < _MAX_REREAD else rest)
    out.append(_unfinished_tag(markup, last_text))
    return "".join(out)


def _unfinished_tag(markup: str, last_text: str) -> str:
    """A tag cut off by the end of the part (`...<a href=http://x`): libxml2 drops it, the event stream showed it as
    text (`<` and the rest, entities resolved); kept as text, unless libxml2 kept it inside a text node."""
    start = markup.rfind("<")
    if start < 0 or not markup[start + 1 : start + 2].isascii() or not (markup[start + 1 : start + 2].isalpha()
                                                                          or markup[start + 1 : start + 2] == "/"):
        return ""
    rest = markup[start:]
    if ">" in rest or _newlines(last_text).endswith(_newlines(rest)):
        return ""
    return "<" + htmllib.unescape(rest[1:])


def _with_breaks(data: bytes) -> bytes:
    """`data` with a line break after the end tag of each block element."""
    ends = [m.end() for m in _BLOCK_END.finditer(data.lower())]
    if not ends:
        return data
    return b"\n".join(data[start:end] for start, end in zip([0, *ends], [*ends, len(data)], strict=True))


def _newlines(text: str) -> str:
    """Line breaks as the HTML tokeniser gives them in text: CR LF and CR become LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def html_to_text(html: str) -> str:
    """Visible text of an HTML document or fragment. Total: malformed HTML gives what could be read."""
    return _text(html, 0)


def _text(markup: str, depth: int) -> str:
    """The text of `markup` read again `depth` levels down (raw-text element content, after an open comment)."""
    try:
        text = _tree_text(markup, depth)
    except ValueError:  # lxml refusing what libxml2 built (a node the walk does not take): the event stream reads it
        text = None
    return _stream_text(markup) if text is None else text


class _StreamExtractor(HTMLParser):
    """The stdlib event stream: slower, but it needs no depth, for the documents libxml2 gives up on."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.hidden = 0
        self.in_head = False
        self.head_seen = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "head":
            self.in_head = not self.head_seen
            self.head_seen = True
            return
        if tag not in _HEAD_CONTENT and tag != "html":
            self.in_head = False  # body content implies </head>
        if tag in _HIDDEN:
            self.hidden += 1
        elif tag in _BLOCK:
            self.chunks.append("\n")
        elif tag == "img" and not self.hidden:
            alt = dict(attrs).get("alt")
            if alt:
                self.chunks.append(f" {alt} ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _HIDDEN:  # <script/> opens nothing
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "head":
            self.in_head = False
        elif tag in _HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in _BLOCK:
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if self.hidden:
            return
        if self.in_head:
            if not data.strip():
                return
            self.in_head = False  # text outside <title> ends the head, as in a browser
        self.chunks.append(data)


def _stream_text(html: str) -> str:
    parser = _StreamExtractor()
    try:
        parser.feed(html)
        parser.close()
    except Exception as exc:  # HTMLParser can raise on pathological markup; keep what was read so far
        logging.getLogger(__name__).info("HTML cut short by a parser error: %s: %s", type(exc).__name__, exc)
    return "".join(parser.chunks)

