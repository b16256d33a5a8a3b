"""Model output as safe HTML: Markdown rendered, code highlighted, then sanitised (no scripts, no handlers)."""

from __future__ import annotations

from functools import lru_cache

import nh3

ALLOWED_TAGS = {
    "p", "br", "hr", "em", "strong", "del", "code", "pre", "blockquote", "ul", "ol", "li",
    "h1", "h2", "h3", "h4", "h5", "h6", "sub", "sup", "table", "thead", "tbody", "tr", "th", "td", "a", "span", "div",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "span": {"class"}, "div": {"class"}, "code": {"class"},
                      "pre": {"class"}, "th": {"align"}, "td": {"align"}, "ol": {"start"}}


def _highlight(code: str, lang: str, attrs: str) -> str:
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import get_lexer_by_name
    from pygments.util import ClassNotFound

    try:
        lexer = get_lexer_by_name(lang or "text")
    except ClassNotFound:
        lexer = get_lexer_by_name("text")
    return highlight(code, lexer, HtmlFormatter(nowrap=True, classstyle=True, classprefix="aigc-hl-"))


@lru_cache(maxsize=1)
def _renderer():
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False, "highlight": _highlight}).enable("table").enable("strikethrough")


def sanitize(html: str) -> str:
    """Drop every tag and attribute not on the allow-list: no <script>, no on* handlers, no javascript: URLs."""
    return nh3.clean(html, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES,
                     url_schemes={"http", "https", "mailto"}, link_rel="noopener noreferrer")


def to_html(text: str) -> str:
    """Render Markdown ``text`` as sanitised HTML."""
    return sanitize(_renderer().render(text))


def highlight_css() -> str:
    """Pygments colours for the classes ``to_html`` emits, light and dark."""
    from pygments.formatters import HtmlFormatter

    return HtmlFormatter(classprefix="aigc-hl-", style="default").get_style_defs(".aigc-md pre")
