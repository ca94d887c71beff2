"""HTML -> its visible text: tags dropped, <script>/<style>/<head> content dropped, entities resolved,
block elements turned into line breaks so that words of adjacent cells or paragraphs do not run together."""

from __future__ import annotations

from html.parser import HTMLParser

_INVISIBLE = {"script", "style", "head", "title", "template", "noscript"}
_BLOCK = {
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "fieldset", "figcaption",
    "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav",
    "ol", "p", "pre", "section", "table", "td", "th", "tr", "ul", "option", "body", "html",
}


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _INVISIBLE:
            self.hidden += 1
        elif tag in _BLOCK:
            self.chunks.append("\n")
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt and not self.hidden:
                self.chunks.append(f" {alt} ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK:
            self.chunks.append("\n")
        elif tag == "img":
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _INVISIBLE:
            self.hidden = max(0, self.hidden - 1)
        elif tag in _BLOCK:
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.chunks.append(data)


def html_to_text(html: str) -> str:
    """Visible text of an HTML document or fragment. Total: malformed HTML gives what could be read."""
    parser = _TextExtractor()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # HTMLParser can raise on pathological markup; keep what was read so far
        pass
    return "".join(parser.chunks)
