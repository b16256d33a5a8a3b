"""Tables of outside text (model ids, paths, history rows): escaped HTML in Jupyter, rich ``Text`` cells in a
terminal. Never rich's HTML export, never rich markup: every cell goes through ``views.outside``."""

from __future__ import annotations

from . import frontend
from .outside import html, rich_text

CELL_LIMIT = 300


def rich_table(title: str, columns: list[str], rows: list[list]):
    from rich.table import Table

    table = Table(title=rich_text(title))
    for column in columns:
        table.add_column(rich_text(column), overflow="fold")
    for row in rows:
        table.add_row(*[rich_text("" if cell is None else cell, limit=CELL_LIMIT) for cell in row])
    return table


def plain_table(title: str, columns: list[str], rows: list[list], width: int = 120) -> str:
    """The table as text without colour or escape codes (a text/plain output, a log)."""
    from io import StringIO

    from rich.console import Console

    out = StringIO()
    Console(file=out, width=width, color_system=None, force_terminal=False, force_jupyter=False,
            legacy_windows=False).print(rich_table(title, columns, rows))
    return out.getvalue().rstrip("\n")


def html_table(title: str, columns: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html('' if c is None else c, CELL_LIMIT)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return (f"<table class='aigc-table'><caption>{html(title)}</caption>"
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def show_table(shell, title: str, columns: list[str], rows: list[list]) -> None:
    """Display a table in the frontend ``shell`` talks to."""
    if frontend(shell) == "jupyter":
        from IPython.display import display

        display({"text/html": html_table(title, columns, rows), "text/plain": plain_table(title, columns, rows)},
                raw=True)
    else:
        from rich.console import Console

        Console().print(rich_table(title, columns, rows))

