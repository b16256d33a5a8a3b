"""A real JupyterLab server on 127.0.0.1 and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import ROOT, free_port

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
TOKEN = "aigc-browser-test"


def shots_dir() -> Path:
    folder = Path(os.environ.get("AIGC_TEST_OUT", ROOT / "test-output")) / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def lab_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lab")
    for notebook in (ROOT / "examples").glob("*.ipynb"):
        shutil.copy(notebook, root / notebook.name)
    return root


@pytest.fixture(scope="session")
def lab(lab_root):
    """JupyterLab on a free port, stopped by its own pid at the end."""
    port = free_port()
    log = open(lab_root / "jupyterlab.log", "w")
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={lab_root}",
           f"--LabApp.workspaces_dir={lab_root / '.workspaces'}", "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=lab_root)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/api/status?token={TOKEN}", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError("JupyterLab did not start")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    pg = context.new_page()
    yield pg
    context.close()


def write_notebook(root: Path, name: str, cells: list[str]) -> str:
    import nbformat

    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, root / name)
    return name


def open_notebook(page, lab: str, name: str) -> None:
    page.goto(f"{lab}/lab/tree/{name}?token={TOKEN}&reset")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60000)
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=60000)
    news = page.locator(".jp-Notification-Toast-Close, .jp-toast-button:text-is('No')")
    if news.count():
        news.first.click()


def run_all(page) -> None:
    """Run → Run All Cells, retried once if no cell started (the menu can open before the kernel is ready)."""
    for _ in range(2):
        page.click(".jp-Notebook .jp-Cell")
        page.click(".lm-MenuBar-itemLabel:text-is('Run')")
        page.wait_for_selector(".lm-Menu-item[data-command='runmenu:run-all']", state="visible")
        page.wait_for_timeout(300)
        page.click(".lm-Menu-item[data-command='runmenu:run-all']")
        try:
            page.wait_for_selector(".jp-InputPrompt:has-text('[*]'), .jp-InputPrompt:has-text('[1]')", timeout=15000)
            return
        except Exception:
            page.keyboard.press("Escape")
    raise AssertionError("Run All Cells did not start the notebook")


def wait_idle(page, timeout: float = 300000) -> None:
    page.wait_for_timeout(500)
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=timeout)


def shot(page, name: str, locator=None) -> Path:
    path = shots_dir() / f"{name}.png"
    (locator or page).screenshot(path=str(path))
    return path
