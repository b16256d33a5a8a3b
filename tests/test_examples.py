"""Every notebook in examples/ runs headless in a real kernel; the saved result stays readable."""

import os
import tempfile
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbconvert import HTMLExporter

from conftest import ROOT

pytestmark = pytest.mark.slow
EXAMPLES = sorted((ROOT / "examples").glob("*.ipynb"))
OUT = Path(os.environ.get("AIGC_TEST_OUT", ROOT / "test-output")) / "examples"


def execute(path: Path):
    """Run ``path`` in a fresh temporary folder, so the files it writes stay out of the repository."""
    notebook = nbformat.read(path, as_version=4)
    assert notebook.metadata.kernelspec.name == "python3"
    os.environ["JUPYTER_AIGC_QUICK"] = "1"  # the image lab's notebook trains for seconds, not minutes
    NotebookClient(notebook, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": tempfile.mkdtemp(prefix="aigc-example-")}}).execute()
    OUT.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, OUT / path.name)
    return notebook


def answer_outputs(notebook) -> list[str]:
    """The static copies of the answers (sanitised HTML with the footer), as saved in the notebook."""
    return [o["data"]["text/html"] for c in notebook.cells if c.cell_type == "code"
            for o in c.get("outputs", []) if "aigc-fallback" in o.get("data", {}).get("text/html", "")]


# the pictures a training view leaves in the saved notebook, for nbconvert and a reopened notebook with no kernel
STATIC_COPIES = {"06_finetune": ['alt="loss chart"'], "09_image_lab": ['alt="loss curves"', 'alt="samples from fixed noise"']}


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_without_errors(path):
    notebook = execute(path)
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            assert output.get("output_type") != "error", f"{path.name}: {output.get('evalue')}"
            if output.get("name") == "stderr":
                assert "UsageError" not in output["text"], output["text"]
                assert not any(word in output["text"] for word in ("Warning", "warning", "[transformers]")), (
                    f"{path.name}: a library's warning shows in the notebook: {output['text'][:300]}")
    saved = " ".join(o.get("data", {}).get("text/html", "") for c in notebook.cells for o in c.get("outputs", []))
    for picture in STATIC_COPIES.get(path.stem, []):
        assert picture in saved, f"{path.name}: no static copy {picture}"


def test_quickstart_answers_and_reads_back_without_a_kernel():
    notebook = execute(ROOT / "examples" / "01_quickstart.ipynb")
    answers = answer_outputs(notebook)
    assert any("Paris" in a for a in answers), answers
    assert any("SmolLM2-135M-Instruct" in a and "tok/s" in a for a in answers), "footer in the saved answer"
    fact_cell = next(c for c in notebook.cells if "-o fact" in c.source)
    fact = next(o["metadata"]["jupyter_aigc"]["responses"][0]["text"] for o in fact_cell.outputs
                if o.get("metadata", {}).get("jupyter_aigc"))
    print_cell = next(c for c in notebook.cells if c.source == "print(fact)")
    assert fact.strip() and print_cell.outputs[0]["text"].strip() == fact.strip(), "-o fact holds the answer shown"
    widget_state = notebook.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    assert widget_state.get("state"), "widget state saved, so JupyterLab can redraw the widgets without a kernel"
    metadata = [o.get("metadata", {}).get("jupyter_aigc") for c in notebook.cells
                for o in c.get("outputs", []) if o.get("metadata", {}).get("jupyter_aigc")]
    provenance = metadata[0]["responses"][0]
    assert provenance["model"] == "SmolLM2-135M-Instruct" and provenance["params"]["temperature"] == 0
    assert provenance["usage"]["completion_tokens"] > 0


def test_nbconvert_html_contains_the_answer():
    path = OUT / "01_quickstart.ipynb"
    notebook = nbformat.read(path, as_version=4) if path.exists() else execute(ROOT / "examples" / "01_quickstart.ipynb")
    html, _ = HTMLExporter().from_notebook_node(notebook)
    (OUT / "01_quickstart.html").write_text(html)
    assert "The capital of France is Paris" in html
