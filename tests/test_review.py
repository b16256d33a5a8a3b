"""Human review in %%aigc_eval's grid, kernel side, on the real default model: a rating sent as the browser sends
it is kept in the history store, found again by a re-run (and after a restart: a new store on the same file), kept
for answers that did not change when a variant changed, carried by -o's DataFrame, summarised as `human` with its
interval, and compared with each metric by Cohen's kappa and Spearman's rho (equal to scikit-learn's and scipy's).
Bad ratings are refused in one line; a rating given while the run goes on is not lost."""

import math
import statistics
import threading

import pytest
from scipy.stats import spearmanr
from sklearn.metrics import cohen_kappa_score

from jupyter_aigc.options import parse_argstring
from test_evaluate import QA, TEMPLATE
from jupyter_aigc.record.history import HistoryStore
from jupyter_aigc.views.eval import evaluation_html
from jupyter_aigc.views.widgets.eval_grid import EvalGrid, blind_order

pytestmark = pytest.mark.slow

RATINGS = [(True, 5), (False, 2), (True, 4), (False, 1), (True, 3), (False, 2), (True, 4), (True, 5), (False, 1),
           (True, 3), (False, 3), (True, 2)]


@pytest.fixture
def qa_shell(shell):
    shell.user_ns["qa"] = [dict(row) for row in QA]
    shell.run_line_magic("aigc", "history --clear")
    return shell


def evaluate(shell, line: str, grid: EvalGrid | None = None, cancel=None):
    """Run %%aigc_eval's task with the grid as its view, as the magic does in JupyterLab."""
    args = parse_argstring(shell.magics_manager.magics["cell"]["aigc_eval"], line)
    grid = grid or EvalGrid(blind=args.blind)
    session = shell._jupyter_aigc_session
    grid.on_rate = session.evaluate.rate
    evaluation = session.evaluate.run(args, TEMPLATE, shell.user_ns, cancel or threading.Event(), grid)
    return evaluation, grid


def rate(grid: EvalGrid, row: int, variant: int, **rating):
    """What the browser sends when a key is pressed in the grid."""
    sent = []
    grid.send = lambda content, buffers=None: sent.append(content)
    grid._handle_message(grid, {"type": "rate", "row": row, "variant": variant,
                                "rating": {"pass": None, "score": None, "note": "", **rating}}, [])
    return sent


def test_ratings_are_kept_summarised_compared_and_carried_by_the_dataframe(qa_shell):
    line = "--data qa --reference answer --metrics contains,rouge,length --temperature 0,0.8 --seed 2 --max-tokens 12"
    evaluation, grid = evaluate(qa_shell, line)
    session = qa_shell._jupyter_aigc_session
    frame = session.evaluate.dataframe(evaluation)
    assert {"human", "human_pass", "human_note"} <= set(frame) and frame["human"].isna().all()
    for index, (verdict, score) in enumerate(RATINGS):
        assert rate(grid, index // 2, index % 2, **{"pass": verdict, "score": score,
                                                    "note": f"note {index}" if index == 3 else ""}) == []
    assert evaluation.metrics[-2:] == ["human", "human_pass"] and grid.metrics[-2:] == ["human", "human_pass"]
    # the DataFrame made before the ratings follows them, and to_csv keeps them
    assert frame["human"].tolist() == [s for _, s in RATINGS] and frame["human"].dtype == float
    assert frame["human_pass"].tolist() == [v for v, _ in RATINGS] and frame.loc[3, "human_note"] == "note 3"
    assert "human_note" in frame.to_csv() and "note 3" in frame.to_csv()
    # human with its interval, like any metric
    for variant in (0, 1):
        scores = [s for i, (_, s) in enumerate(RATINGS) if i % 2 == variant]
        stats = evaluation.summary["human"]["variants"][variant]
        assert stats["mean"] == pytest.approx(statistics.fmean(scores)) and stats["n"] == len(scores)
        assert stats["ci95"] == pytest.approx(1.959964 * statistics.stdev(scores) / math.sqrt(len(scores)), rel=1e-4)
    assert grid.summary["human"] == evaluation.summary["human"]
    # agreement: kappa of pass/fail against the metric's pass, rho of scores against its values
    people_pass = [int(v) for v, _ in RATINGS]
    people_score = [s for _, s in RATINGS]
    contains = frame["contains"].tolist()
    expected_kappa = cohen_kappa_score(people_pass, [int(c >= 0.5) for c in contains]) \
        if len(set(people_pass) | {int(c >= 0.5) for c in contains}) > 1 else None
    agreement = grid.agreement
    assert agreement["contains"]["kappa_n"] == 12
    assert agreement["contains"]["kappa"] == (pytest.approx(expected_kappa) if expected_kappa is not None else None)
    for metric in ("rouge", "length"):
        values = frame[metric].tolist()
        expected = spearmanr(people_score, values).statistic if len(set(values)) > 1 else None
        assert agreement[metric]["rho_n"] == 12
        assert agreement[metric]["rho"] == (pytest.approx(expected) if expected is not None else None)
    assert agreement["length"]["kappa"] is None, "length has no range: no pass, no kappa"
    # the saved copy shows the ratings and the agreement
    copy = evaluation_html(evaluation)
    assert "reviewed: fail, 1/5, note: note 3" in copy and "agreement with people" in copy

    # a re-run (and a restart: a new store on the same file) finds the ratings of the same answers
    session.history = HistoryStore(session.history.path)
    again, grid2 = evaluate(qa_shell, line)
    assert again.reused == 12 and [c.rating["score"] for c in again.cells] == people_score
    assert grid2.rows[1]["cells"][1]["rating"] == {"pass": False, "score": 1, "note": "note 3"}
    # a changed variant: the unchanged one keeps its ratings, the new one has none
    changed, _ = evaluate(qa_shell, line.replace("0,0.8", "0,0.5"))
    assert [c.rating and c.rating["score"] for c in changed.cells[0::2]] == people_score[0::2]
    assert all(c.rating is None for c in changed.cells[1::2])


def test_a_changed_answer_is_a_new_answer_to_rate(qa_shell):
    line = "--data qa --temperature 0 --max-tokens 8"
    evaluation, grid = evaluate(qa_shell, line)
    rate(grid, 0, 0, **{"pass": True, "score": 5})
    history = qa_shell._jupyter_aigc_session.history
    cell = evaluation.cells[0]
    stored = history.answer(cell.key)
    history.store_answer(cell.key, {**stored, "text": stored["text"] + " (edited)"})
    again, _ = evaluate(qa_shell, line)
    assert again.cells[0].rating is None and again.cells[0].response.text.endswith("(edited)")


def test_bad_ratings_are_refused_in_one_line_and_nothing_is_lost(qa_shell):
    evaluation, grid = evaluate(qa_shell, "--data qa --temperature 0 --max-tokens 8")
    rate(grid, 0, 0, score=4)
    for row, variant, rating, words in [(0, 0, {"score": 9}, "score is 9"), (0, 0, {"pass": "yes"}, "pass is 'yes'"),
                                        (7, 0, {"score": 3}, "no answer at example 7"),
                                        (0, 3, {"score": 3}, "variant 3")]:
        sent = rate(grid, row, variant, **rating)
        assert len(sent) == 1 and sent[0]["type"] == "rating-refused" and words in sent[0]["text"]
        assert "\n" not in sent[0]["text"] and "Traceback" not in sent[0]["text"]
    assert evaluation.cells[0].rating == {"pass": None, "score": 4, "note": ""}, "the earlier rating stays"
    rate(grid, 0, 0)  # an empty rating clears it
    assert evaluation.cells[0].rating is None and "human" not in evaluation.cells[0].scores


def test_a_rating_given_while_the_run_goes_on_is_kept(qa_shell):
    """The grid serves messages while answers come: a rating of a finished answer is kept by the end's summary."""
    grid = EvalGrid()
    given = threading.Event()
    original = grid.cell_done

    def cell_done(evaluation, cell):
        original(evaluation, cell)
        if not given.is_set() and cell.response is not None:
            given.set()
            rate(grid, cell.row, cell.variant, **{"pass": False, "score": 2, "note": "given mid-run"})
            assert grid.running, "the run is still going"

    grid.cell_done = cell_done
    evaluation, _ = evaluate(qa_shell, "--data qa --temperature 0 --max-tokens 8 --fresh", grid)
    rated = [c for c in evaluation.cells if c.rating]
    assert len(rated) == 1 and rated[0].rating["note"] == "given mid-run"
    assert evaluation.summary["human"]["variants"][0]["n"] == 1 and grid.summary["human_pass"]["variants"][0]["mean"] == 0


def test_blind_order_shuffles_each_row_and_is_the_same_on_a_re_run(qa_shell):
    line = "--data qa --temperature 0,0.5,1 --seed 1 --max-tokens 6 --blind"
    evaluation, grid = evaluate(qa_shell, line)
    assert grid.blind and grid.order == blind_order(evaluation)
    assert all(sorted(order) == [0, 1, 2] for order in grid.order)
    assert len({tuple(order) for order in grid.order}) > 1, "rows are shuffled differently"
    assert rate(grid, 0, grid.order[0][0], score=4) == []
    assert "human" in grid.summary and grid.metrics[-2:] == ["human", "human_pass"]
    _, again = evaluate(qa_shell, line)
    assert again.order == grid.order
