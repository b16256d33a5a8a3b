"""Tokens and the vocabulary against transformers and tokenizers themselves: the ids are the default model's
``tokenizer.encode`` (its converted folder's tokenizer, loaded here separately), each word's merge steps end at
the same ids, the browser's BPE loop (run in node) builds every word the same way, and a trained vocabulary cut
to k tokens is the one the tokenizers trainer makes when asked for k."""

import json
import shutil
import subprocess
import xml.dom.minidom
from pathlib import Path

import pytest

from conftest import run_cell

pytestmark = pytest.mark.slow
STATIC = Path(__file__).resolve().parents[1] / "jupyter_aigc" / "views" / "widgets" / "static"
TEXTS = ["Tokenization splits text into pieces.", "  Leading spaces,\ttabs\nand new lines\n\n",
         "naïve café — 東京 🎉 tokenizers!", "def f(x):\n    return {x: 1}  # code",
         "The the THE tHe 12345 3.14159"]
CLASS_TEXT = ("A tokenizer splits text into tokens. A vocabulary of tokens grows merge by merge: the most frequent "
              "pair of tokens becomes a new token. The new token joins the vocabulary, and the text needs fewer "
              "tokens. Frequent words become single tokens; rare words stay in pieces.\n") * 3


@pytest.fixture(scope="module")
def reference(default_gguf):
    """The default model's tokenizer, from its transformers copy, loaded by this test itself."""
    from transformers import AutoTokenizer

    from jupyter_aigc.core.convert import safetensors_folder

    return AutoTokenizer.from_pretrained(safetensors_folder(default_gguf))


def test_ids_are_tokenizer_encode_with_pieces_and_bytes(shell, reference):
    import jupyter_aigc

    for text in TEXTS:
        view = jupyter_aigc.tokens_view(text)
        ids = reference.encode(text)
        assert view.ids == ids, text
        assert view.tokens == reference.convert_ids_to_tokens(ids)
        main = view.tokenizations[0]
        assert b"".join(main.bytes) == text.encode(), "the bytes behind the pieces are the text's bytes"
        assert view.rows[0]["ids"] == ids and len(view.rows[0]["bytes"]) == len(ids)
        assert main.vocab_size == len(reference) and main.kind == "BPE"
    emoji = jupyter_aigc.tokens_view("🎉")
    assert len(emoji.ids) > 1 and "\\x" in "".join(emoji.pieces), "part of a character shows as its bytes"
    assert "1 token for 1 character (1 byte)" in jupyter_aigc.tokens_view("a").static_html()


def test_only_the_tokenizer_is_loaded(shell):
    import jupyter_aigc

    jupyter_aigc.tokens_view("No weights are needed to split text.")
    assert shell._jupyter_aigc_session.cache.stats() == [], "the model's weights were loaded"


def test_without_the_transformers_copy_the_tokenizer_comes_from_the_gguf(shell, reference, monkeypatch):
    import jupyter_aigc
    from jupyter_aigc.tasks import tokens

    monkeypatch.setattr(tokens, "made_copy", lambda gguf: None)
    monkeypatch.setattr(tokens, "_loaded", {})
    text = "Tokenization splits naïve text 🎉 into pieces."
    view = jupyter_aigc.tokens_view(text)
    assert view.ids == reference.encode(text) and view.merge_steps.ids == view.ids[:2]
    assert [key.split("|")[1] for key in tokens._loaded] == ["SmolLM2-135M-Instruct.Q4_1.gguf"], "read from the GGUF"
    assert shell._jupyter_aigc_session.cache.stats() == []


def test_merge_steps_end_at_the_encoded_ids(shell, reference):
    import jupyter_aigc

    backend = reference.backend_tokenizer
    merges = json.loads(backend.to_str())["model"]["merges"]
    rank = {tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)): r for r, m in enumerate(merges)}
    text = "Tokenization splits unbelievably long words: naïve 🎉 tokenizers!"
    view = jupyter_aigc.tokens_view(text, word="unbelievably")
    assert view.merge_steps.word.strip() == "unbelievably"
    for word in (w for w in view._words if w.text.strip()):
        steps = view.steps(word.text)
        assert steps.ids == view.ids[word.first:word.last], word.text
        assert [t.value for t in backend.model.tokenize(word.piece)] == steps.states[-1]
        assert steps.states[0] == list(word.piece), "BPE starts from the word's bytes"
        for (left, right, r), before, after in zip(steps.merges, steps.states, steps.states[1:]):
            assert rank[(left, right)] == r and "".join(after) == word.piece
            assert len(after) < len(before) and left + right in after
        assert [r for _, _, r in steps.merges] == sorted(r for _, _, r in steps.merges), "lowest rank first"
    default = jupyter_aigc.tokens_view(text)
    assert default.merge_steps.word.strip() == "unbelievably", "the longest word by default"


def test_the_browsers_bpe_loop_builds_every_word_like_tokenizers(shell):
    """tokens_common.js's ``bpe`` (run in node) on the data the view sends: every word's tokens and ids, and
    the chosen word's steps, are those of the tokenizers library."""
    import jupyter_aigc

    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    text = " ".join(TEXTS)
    view = jupyter_aigc.tokens_view(text)
    script = (STATIC / "tokens_common.js").read_text() + """
const data = JSON.parse(require("fs").readFileSync(0, "utf8"));
const ranks = rankTable(data.bpe.merges);
const out = data.words.map((w) => bpe(Array.from(w.piece), ranks));
process.stdout.write(JSON.stringify(out.map((run) => ({ last: run.states[run.states.length - 1],
  states: run.states, applied: run.applied }))));
"""
    payload = json.dumps({"bpe": view.bpe, "words": view.words})
    result = subprocess.run([node, "-e", script], input=payload, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    runs = json.loads(result.stdout)
    symbols = view.bpe["symbols"]
    for word, run in zip(view.words, runs):
        assert [symbols[s][0] for s in run["last"]] == view.ids[word["first"]:word["last"]], word["text"]
    chosen = runs[view.word]
    assert chosen["states"] == view.merge_steps.states
    assert [tuple(m) for m in chosen["applied"]] == view.merge_steps.merges


def test_compare_lines_up_other_local_tokenizers(shell, tiny_model, reference):
    from transformers import AutoTokenizer

    import jupyter_aigc

    text = "The capital of France is Paris."
    view = jupyter_aigc.tokens_view(text, compare=[str(tiny_model)])
    assert [row["model"] for row in view.rows] == ["SmolLM2-135M-Instruct", "tiny-llama"]
    assert view.rows[1]["ids"] == AutoTokenizer.from_pretrained(tiny_model).encode(text)
    assert view.ids == reference.encode(text)
    same = jupyter_aigc.tokens_view(text, compare=f"SmolLM2-135M-Instruct,{tiny_model}")
    assert len(same.rows) == 2, "a tokenizer named twice is shown once"


def test_train_tokenizer_grows_the_vocabulary_like_the_trainer():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    import jupyter_aigc

    view = jupyter_aigc.train_tokenizer(CLASS_TEXT, 120)
    alphabet = len(view.trained.alphabet)
    assert view.vocab_size == 120 == alphabet + len(view.merges)
    assert alphabet == len({c for c in CLASS_TEXT.replace(" ", "Ġ").replace("\n", "Ċ")})
    assert view.tokenizer.get_vocab_size() == 120
    counts = []
    for size in (alphabet, alphabet + 1, alphabet + 10, 90, 119, 120):
        fresh = Tokenizer(models.BPE())  # trained again, asked for `size`: the same first merges
        fresh.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        fresh.train_from_iterator([CLASS_TEXT], trainers.BpeTrainer(vocab_size=size, show_progress=False))
        assert view.tokens(size) == fresh.encode(CLASS_TEXT).tokens, size
        assert view.ids(size) == fresh.encode(CLASS_TEXT).ids
        counts.append(len(view.tokens(size)))
    assert counts == sorted(counts, reverse=True) and counts[0] == len(CLASS_TEXT.encode())
    assert view.growth(4)[0] == (alphabet, counts[0]) and view.growth(4)[-1] == (120, counts[-1])
    small = jupyter_aigc.train_tokenizer(["ab ab", "ab"], 1000)
    assert small.vocab_size < 1000 and small.trained.requested == 1000, "it stops when no pair is left"
    assert view.pieces == [p for p, _ in view.tokenizer.pre_tokenizer.pre_tokenize_str(CLASS_TEXT)]


@pytest.mark.parametrize("cell, message", [
    ("%%aigc_tokens -m nope-model\nhi", "Unknown model 'nope-model'"),
    ("%%aigc_tokens -m openai:gpt-4o-mini\nhi", "its tokenizer is not on this machine"),
    ("%%aigc_tokens --word cat\nhi there", "No word of the text is 'cat'. Give a whole word of the text"),
    ("%%aigc_tokens --compare ' ,x'\nhi", "has an empty name"),
    ("%%aigc_tokens --train 5\nhello world", "A vocabulary of 5 tokens leaves no room for merges"),
    ("%%aigc_tokens --train 999999\nhello", "--train 999999 is out of range"),
    ("%%aigc_tokens --train x\nhello", "invalid int value"),
    ("%%aigc_tokens --train 50 -m SmolLM2-135M-Instruct\nhello", "--train builds its own tokenizer"),
    ("%%aigc_tokens --train 50\n   ", "There is no text to build a vocabulary from"),
    ("import jupyter_aigc\njupyter_aigc.tokens_view('')", "There is no text to split into tokens"),
    ("import jupyter_aigc\njupyter_aigc.train_tokenizer('abc', 0)", "vocab_size 0 is out of range"),
    ("import jupyter_aigc\njupyter_aigc.tokens_view('hi there', word='cat')", "No word of the text is 'cat'"),
])
def test_bad_input_is_one_line(shell, cell, message, capsys):
    result = shell.run_cell(cell)
    err = capsys.readouterr().err
    assert not result.success and message in err and "Traceback" not in err, err


def test_magics_in_a_real_shell(shell, reference):
    text = "The magic splits this text."
    result = run_cell(shell, "aigc_tokens", "--word splits -o toks", text)
    assert result.success, result.error_in_exec
    view = shell.user_ns["toks"]
    assert view.ids == reference.encode(text) and view.merge_steps.word.strip() == "splits"
    assert view.caption
    result = run_cell(shell, "aigc_tokens", "--train 40 --caption off -o vocab", CLASS_TEXT)
    assert result.success, result.error_in_exec
    vocab = shell.user_ns["vocab"]
    assert type(vocab).__name__ == "VocabularyView" and vocab.vocab_size == 40 and vocab.caption == ""


def test_static_copies_and_pictures_are_safe(shell, tmp_path):
    import jupyter_aigc

    from hostile_server import dangerous_markup

    hostile = 'Say <img src=x onerror="alert(1)"> and <script>alert(2)</script> now'
    views = [jupyter_aigc.tokens_view(hostile), jupyter_aigc.train_tokenizer(hostile * 3, 60)]
    for view in views:
        html = view.static_bundle()["text/html"] if hasattr(view, "static_bundle") else view.static_html()
        assert html and dangerous_markup(html) == [], type(view).__name__
        assert "&lt;" in html, "the text is shown, as text"
        svg = view.save(tmp_path / f"{type(view).__name__}.svg").read_text()
        xml.dom.minidom.parseString(svg)
        assert "<img" not in svg and "<script" not in svg
        assert view.save(tmp_path / "x.png").read_bytes().startswith(b"\x89PNG")
    assert "onerror" in views[0].static_html() and "tokenizer.encode" in views[0].static_html()
