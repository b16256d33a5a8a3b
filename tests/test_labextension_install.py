"""The JupyterLab extension as pip installed it: listed, enabled and OK, with shortcuts free in JupyterLab."""

import json
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

OURS = json.loads((ROOT / "labextension" / "schema" / "commands.json").read_text())


def test_pip_install_registers_the_extension_enabled_and_ok():
    out = subprocess.run([sys.executable, "-m", "jupyter", "labextension", "list"], capture_output=True,
                         text=True, timeout=120)
    lines = [line for line in (out.stdout + out.stderr).splitlines() if "jupyter-aigc" in line]
    assert lines, "jupyter-aigc is not among the installed extensions"
    assert "enabled" in lines[0] and "OK" in lines[0], lines[0]


def installed_shortcuts() -> list[dict]:
    """Every shortcut that JupyterLab and the other installed extensions declare."""
    share = Path(sys.prefix) / "share" / "jupyter"
    files = list((share / "lab" / "schemas").rglob("*.json"))
    files += [f for f in (share / "labextensions").rglob("schemas/**/*.json") if "jupyter-aigc" not in f.parts]
    assert files, "no JupyterLab schemas found to compare with"
    return [s for f in files for s in json.loads(f.read_text()).get("jupyter.lab.shortcuts", [])
            if not s.get("disabled")]


def test_shortcuts_clash_with_no_jupyterlab_default():
    """A sequence clashes if it equals another or one starts the other (Lumino would wait or shadow)."""
    defaults = installed_shortcuts()
    for ours in OURS["jupyter.lab.shortcuts"]:
        keys = [k.lower() for k in ours["keys"]]
        for other in defaults:
            theirs = [k.lower() for k in other["keys"] if k]
            if not theirs:
                continue
            shorter = min(len(keys), len(theirs))
            assert keys[:shorter] != theirs[:shorter], f"{ours['keys']} clashes with {other['command']}"


def test_every_command_has_a_shortcut_and_a_toolbar_button():
    commands = {s["command"] for s in OURS["jupyter.lab.shortcuts"]}
    buttons = {item["command"] for item in OURS["jupyter.lab.toolbars"]["Notebook"]}
    assert commands == buttons == {"jupyter-aigc:insert-gpt-cell", "jupyter-aigc:insert-image-cell",
                                   "jupyter-aigc:open-attention"}
