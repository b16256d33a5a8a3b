"""Views of an evaluation that are not the widget: rich in the terminal, and the inert HTML copy saved in
the notebook (for reopening without a kernel and nbconvert). Model text is escaped on both."""

from __future__ import annotations


from .markdown import sanitize
from .outside import html, rich_text
from .text import FALLBACK_MARKER


def _number(value) -> str:
    if value is None:
        return "–"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def summary_rows(evaluation) -> list[list[str]]:
    """One row per metric: the metric, then 'mean ± ci (n)' per variant (and how many partial answers were left
    out), the best marked with ★."""
    rows = []
    for metric in evaluation.metrics:
        entry = evaluation.summary.get(metric, {})
        cells = [metric]
        for index, stats in enumerate(entry.get("variants", [])):
            text = f"{_number(stats['mean'])} ± {_number(stats['ci95'])} ({stats['n']})"
            if stats.get("partial"):
                text += f", {stats['partial']} partial left out"
            cells.append(("★ " if entry.get("best") == index else "") + text)
        rows.append(cells)
    return rows


def cell_mark(cell) -> str:
    """'' for a finished answer; else what it is: not run, failed, or partial (stopped or cut off)."""
    if cell.response is None:
        return "not run"
    if cell.response.finish_reason == "error":
        return "failed"
    return f"partial ({cell.response.finish_reason})" if cell.partial else ""


def partial_note(evaluation) -> str:
    partial = sum(c.partial for c in evaluation.cells)
    if not partial:
        return ""
    counted = "counted in the means" if evaluation.include_partial else \
        "left out of the means (--include-partial counts them)"
    return f"{partial} partial answers (stopped or cut off) {counted}"


def notes(evaluation) -> list[str]:
    """How many answers, reused, partial and failed, for under the summary."""
    lines = [f"{len(evaluation.cells)} answers, {evaluation.reused} reused from earlier runs"]
    lines += ["stopped"] if evaluation.stopped else []
    lines += [partial_note(evaluation), evaluation.failures()]
    return [line for line in lines if line]


def choice_lines(choice: dict | None) -> list[tuple[str, str]]:
    """(marks, 'choice: log-probability') per choice of a --task choice cell: ▶ picked, ✓ gold, n the pick per
    character (acc_norm's)."""
    if not choice:
        return []
    lines = []
    for index, (text, logprob) in enumerate(zip(choice["choices"], choice["logprobs"])):
        marks = ("▶" if index == choice["pick"] else "") + ("n" if index == choice["pick_norm"] else "") + \
            ("✓" if index == choice["gold"] else "")
        lines.append((marks, f"{text}: {'–' if logprob is None else f'{logprob:.4g}'}"))
    return lines


def choice_html(choice: dict | None) -> str:
    lines = choice_lines(choice)
    if not lines:
        return ""
    return "<br>" + "<br>".join(f"{html(marks)} {html(text, 200)}" for marks, text in lines)


def rating_text(rating: dict | None) -> str:
    """'reviewed: pass, 4/5, note: …' for a rated answer, '' otherwise."""
    if not rating:
        return ""
    parts = [{True: "pass", False: "fail"}.get(rating.get("pass"), "")]
    parts.append(f"{rating['score']}/5" if rating.get("score") else "")
    parts.append(f"note: {rating['note']}" if rating.get("note") else "")
    return "reviewed: " + ", ".join(p for p in parts if p)


def checks_text(checks: list | None) -> list[str]:
    """'✓ contains Paris' per assertion of a --promptfoo test."""
    return [f"{'✓' if c.get('pass') else '✗'} {c.get('type')} {'' if c.get('value') is None else c.get('value')}".strip()
            for c in checks or []]


def agreement_rows(evaluation) -> list[list[str]]:
    """Per automatic metric: its name, Cohen's kappa (pairs) and Spearman's rho (pairs) against people."""
    return [[name, f"{_number(entry['kappa'])} ({entry['kappa_n']})", f"{_number(entry['rho'])} ({entry['rho_n']})"]
            for name, entry in evaluation.agreement.items()]


def evaluation_html(evaluation) -> str:
    """Summary and rows as a sanitised HTML table, marked as the copy the live widget hides."""
    head = "".join(f"<th>{html(t)}</th>" for t in ["metric", *evaluation.titles])
    summary = "".join("<tr>" + "".join(f"<td>{html(c)}</td>" for c in row) + "</tr>"
                      for row in summary_rows(evaluation))
    width = len(evaluation.titles)
    body = []
    for index, row in enumerate(evaluation.rows):
        fields = "<br>".join(f"<strong>{html(str(k))}</strong>: {html(str(v), 200)}" for k, v in row.items())
        cells = []
        for cell in evaluation.cells[index * width:(index + 1) * width]:
            output = html(cell.response.text if cell.response is not None else "", 500)
            scores = ", ".join(f"{k} {_number(v)}" for k, v in cell.scores.items())
            mark = f"<em>{html(cell_mark(cell))}</em> " if cell_mark(cell) else ""
            choices = choice_html(cell.choice)
            checks = "".join(f"<br>{html(line, 300)}" for line in checks_text(cell.checks))
            review = f"<br><sub>{html(rating_text(cell.rating), 600)}</sub>" if cell.rating else ""
            cells.append(f"<td>{output}{choices}{checks}<br><sub>{mark}{html(scores)}</sub>{review}</td>")
        body.append(f"<tr><td>{fields}</td>{''.join(cells)}</tr>")
    examples = "".join(f"<th>{html(t)}</th>" for t in ["example", *evaluation.titles])
    note = f"<p><sub>{'; '.join(html(line, 400) for line in notes(evaluation))}</sub></p>"
    agree = ""
    if evaluation.agreement:
        agree = "<table><thead><tr><th>agreement with people</th><th>Cohen's κ (pass/fail)</th>" \
                "<th>Spearman's ρ (1–5)</th></tr></thead><tbody>" + "".join(
                    "<tr>" + "".join(f"<td>{html(c)}</td>" for c in row) + "</tr>"
                    for row in agreement_rows(evaluation)) + "</tbody></table>"
    return sanitize(f"<table><thead><tr>{head}</tr></thead><tbody>{summary}</tbody></table>{agree}{note}"
                    f"<table><thead><tr>{examples}</tr></thead><tbody>{''.join(body)}</tbody></table>") + FALLBACK_MARKER


class TerminalEvalView:
    """A progress line while answers come, then the summary table, in terminal IPython."""

    def __init__(self, console=None):
        from rich.console import Console

        self.console = console or Console()
        self.progress = None

    def begin(self, evaluation) -> None:
        from rich.progress import Progress

        self.progress = Progress(console=self.console, transient=True)
        self.progress.start()
        self.task = self.progress.add_task("answers", total=len(evaluation.cells), completed=evaluation.reused)

    def cell_done(self, evaluation, cell) -> None:
        self.progress.advance(self.task)

    def end(self, evaluation) -> None:
        from rich.table import Table

        self.progress.stop()
        table = Table(title=rich_text(f"{len(evaluation.rows)} examples × {len(evaluation.titles)} variants "
                            f"({evaluation.reused} answers reused)"))
        for title in ["metric", *evaluation.titles]:
            table.add_column(rich_text(title))
        for row in summary_rows(evaluation):
            table.add_row(*[rich_text(c) for c in row])
        if partial_note(evaluation):
            table.caption = rich_text(partial_note(evaluation))
        self.console.print(table)
