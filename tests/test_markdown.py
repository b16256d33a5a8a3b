from jupyter_aigc.views.markdown import sanitize, to_html
from jupyter_aigc.views.widgets.gpt_view import prob_color


def test_script_tags_are_dropped():
    html = to_html("Hello <script>alert(1)</script> **world**")
    assert "<script" not in html and "alert(1)</script>" not in html
    assert "<strong>world</strong>" in html


def test_raw_html_event_handlers_and_js_urls_are_dropped():
    dirty = '<img src=x onerror="alert(1)"><a href="javascript:alert(1)" onclick="x()">go</a><p onmouseover="y()">p</p>'
    clean = sanitize(dirty)
    assert "onerror" not in clean and "onclick" not in clean and "onmouseover" not in clean
    assert "javascript:" not in clean
    assert "go" in clean


def test_markdown_links_with_js_scheme_are_not_clickable():
    html = to_html("[x](javascript:alert(1)) <a href=\"javascript:alert(2)\">y</a>")
    assert "<a " not in html, "no clickable javascript: link survives"


def test_code_blocks_are_highlighted():
    html = to_html("```python\ndef f():\n    return 1\n```")
    assert "<pre>" in html and "aigc-hl-" in html and "def" in html


def test_probability_colours_run_from_red_to_green():
    assert prob_color(0.0).startswith("hsla(0,")
    assert prob_color(0.5).startswith("hsla(60,")
    assert prob_color(1.0).startswith("hsla(120,")
    assert prob_color(7) == prob_color(1.0) and prob_color(-1) == prob_color(0.0)


def test_static_answer_copy_is_inert():
    """The copy saved in the notebook (for reopening and nbconvert) carries no markup from the model."""
    from hostile_server import XSS_PIECES, dangerous_markup
    from jupyter_aigc.views.text import Column, answer_bundle

    column = Column("<b>title</b>", text="".join(XSS_PIECES), footer="<script>f()</script>",
                    error='<img src=x onerror="e()">')
    html = answer_bundle([column, column], marker=True)["text/html"]
    assert dangerous_markup(html) == [] and "<b>" not in html
    assert "window.__aigc_xss=1" in html, "the text is shown, escaped"
