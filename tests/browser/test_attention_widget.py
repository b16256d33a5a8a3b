"""The attention widget at 512 tokens in a real JupyterLab: grid, head view, hover labels, PNG export."""

import json

import pytest

from browser.conftest import open_notebook, run_all, shot, shots_dir, wait_idle, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SETUP = """%load_ext jupyter_aigc
import jupyter_aigc
_s = jupyter_aigc.get_session()
with _s.engines["transformers"].use(_s.resolve(None, engine="transformers")) as (_, tok):
    pass
ids = tok(" ".join(["The keeper wrote down every ship, every storm and every quiet night."] * 60))["input_ids"]
text = tok.decode(ids[:512])"""


def test_attention_grid_head_hover_export_at_512_tokens(page, lab, lab_root):
    name = write_notebook(lab_root, "attention_512.ipynb", [SETUP, "jupyter_aigc.attention_view(text)"])
    received = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: received.append(len(payload))))
    open_notebook(page, lab, name)
    run_all(page)
    view = page.locator(".aigc-attn")
    grid = page.locator("canvas.aigc-attn-grid[data-drawn='true']")
    grid.wait_for(timeout=240000)
    wait_idle(page)
    first_view_bytes = sum(received)
    title = page.locator(".aigc-attn-title").inner_text()
    tokens = int(title.split("·")[1].split()[0])
    assert tokens >= 500 and "30 layers × 9 heads" in title
    drawn_ms = int(view.get_attribute("data-grid-drawn-ms"))
    shot(page, "attention-grid", view)

    received.clear()
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 36 + 5, box["y"] + 18 + 5)  # layer 0, head 0
    head = page.locator("canvas.aigc-attn-head[data-drawn='true']")
    head.wait_for(timeout=30000)
    head_bytes = sum(received)
    assert head_bytes >= tokens * tokens, "the full map arrived on demand"
    hbox = head.bounding_box()
    page.mouse.move(hbox["x"] + hbox["width"] * 0.6, hbox["y"] + hbox["height"] * 0.6)
    tip = page.locator(".aigc-attn-tip")
    tip.wait_for(state="visible", timeout=5000)
    assert "attends to" in tip.inner_text() and "#" in tip.inner_text()
    shot(page, "attention-head-hover", view)

    with page.expect_download() as download:
        view.locator(".aigc-attn-export").click()
    png = download.value.path().read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    (shots_dir() / "attention-export.png").write_bytes(png)

    report = {"tokens": tokens, "first_view_bytes_over_websocket": first_view_bytes,
              "grid_drawn_ms_after_render": drawn_ms, "full_head_bytes": head_bytes,
              "bertviz_json_bytes_estimate": 30 * 9 * tokens * tokens * len("0.123456, ")}
    (shots_dir() / "attention-b4.json").write_text(json.dumps(report, indent=1))
    print(report)
    assert first_view_bytes <= 2 * 2**20
