"""Views only show: the magic layer picks one for the frontend it runs in."""

from __future__ import annotations


def frontend(shell) -> str:
    """'jupyter' for a kernel talking to a notebook frontend, 'terminal' for terminal IPython and scripts."""
    return "jupyter" if type(shell).__name__ == "ZMQInteractiveShell" else "terminal"


def text_view(shell, config, first_request, stream: bool = True):
    """The view a %%gpt cell streams into: a GptView widget, sanitised HTML, or rich in the terminal."""
    from .text import MarkdownRenderer, TerminalRenderer, WidgetRenderer

    if frontend(shell) == "jupyter" and config.widget:
        from ..options import controls
        from .widgets.gpt_view import GptView

        values = {"temperature": first_request.temperature, "top_p": first_request.top_p,
                  "max_tokens": first_request.max_tokens, "seed": first_request.seed}
        view = WidgetRenderer(GptView(controls=values, limits=controls()))
    elif frontend(shell) == "jupyter":
        view = MarkdownRenderer()
    else:
        view = TerminalRenderer()
    view.stream = stream
    return view
