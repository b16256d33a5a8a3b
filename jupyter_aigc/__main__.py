"""`python -m jupyter_aigc demo`: stream an answer from the default model, then run the quickstart notebook.
`python -m jupyter_aigc serve …` (also `jupyter-aigc serve`): one model server for a class (serve/cli.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def stream_in_terminal(prompt: str, options: str) -> bool:
    """Run one %%gpt cell in an IPython shell: the answer streams here with rich. True if it worked."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "jupyter_aigc")
    return shell.run_cell(f"%%gpt {options}\n{prompt}").success


def run_notebook(path: Path, out_dir: Path) -> Path:
    """Execute ``path`` in a real kernel and save the executed copy under ``out_dir``."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / path.name
    nbformat.write(notebook, target)
    for cell in notebook.cells:
        if cell.cell_type == "code" and cell.source.startswith("%%gpt"):
            for output in cell.get("outputs", []):
                if "jupyter_aigc" in output.get("metadata", {}):
                    print(f"\n--- {cell.source.splitlines()[0]}\n{output['data']['text/plain']}")
    return target


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        from .serve.cli import main as serve

        return serve(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m jupyter_aigc")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="one model server for a whole class (jupyter-aigc serve --help)")
    demo = sub.add_parser("demo", help="stream an answer from the default model, then run examples/01_quickstart")
    demo.add_argument("prompt", nargs="?", default="What is the capital of France?")
    demo.add_argument("--options", default="--temperature 0 --max-tokens 64")
    demo.add_argument("--notebook", default="examples/01_quickstart.ipynb")
    demo.add_argument("--out", default="examples/out")
    args = parser.parse_args(argv)
    print(f"%%gpt {args.options}\n{args.prompt}\n")
    if not stream_in_terminal(args.prompt, args.options):
        return 1
    notebook = Path(args.notebook)
    if notebook.is_file():
        print(f"\nExecuting {notebook} in a real kernel…")
        print(f"\nSaved the executed notebook to {run_notebook(notebook, Path(args.out))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
