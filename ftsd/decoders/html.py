"""HTML -> its visible text: tags dropped, script/style/title content dropped, entities resolved, block elements
turned into line breaks so that words of adjacent cells or paragraphs do not run together.

<head> is handled the way browsers do: its content is hidden, but a missing </head> (common in spam and generated
newsletters) ends where body content starts, instead of hiding the whole message.
"""

from __future__ import annotations

import logging
from html.parser import HTMLParser

_HIDDEN = {"script", "style", "title", "template"}
_HEAD_CONTENT = {"base", "basefont", "bgsound", "link", "meta", "noscript", "object", "script", "style", "template",
                 "title"}
_BLOCK = {
    "address", "article", "aside", "blockquote", "br", "caption", "center", "dd", "div", "dl", "dt", "fieldset",
    "figcaption", "figure", "footer", "form", "frame", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "iframe",
    "li", "main", "nav", "ol", "option", "p", "pre", "section", "select", "table", "tbody", "td", "textarea",
    "tfoot", "th", "thead", "tr", "ul", "body", "html",
}


class _TextExtractor(HTMLParser):
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


def html_to_text(html: str) -> str:
    """Visible text of an HTML document or fragment. Total: malformed HTML gives what could be read."""
    parser = _TextExtractor()
    try:
        parser.feed(html)
        parser.close()
    except Exception as exc:  # HTMLParser can raise on pathological markup; keep what was read so far
        logging.getLogger(__name__).info("HTML cut short by a parser error: %s: %s", type(exc).__name__, exc)
    return "".join(parser.chunks)
