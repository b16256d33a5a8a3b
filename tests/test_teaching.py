"""The teaching views' numbers against an independent computation with transformers on the default model
(its converted safetensors folder, loaded here separately from the kernel's cache)."""

import math

import numpy as np
import pytest
import torch

from conftest import run_cell

pytestmark = pytest.mark.slow
PROMPT = "The capital of France is"
STORY = "The cat sat on the mat because it was tired."


@pytest.fixture(scope="module")
def reference(default_gguf):
    """The default model's weights loaded by this test itself, in eager attention."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from jupyter_aigc.core.convert import safetensors_folder

    folder = safetensors_folder(default_gguf)
    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    return model, AutoTokenizer.from_pretrained(folder)


def test_logits_are_the_models_own_and_distributions_follow_transformers(shell, reference):
    import jupyter_aigc
    from jupyter_aigc.tasks.teach import distribution
    from transformers.generation.logits_process import (LogitsProcessorList, TemperatureLogitsWarper,
                                                        TopKLogitsWarper, TopPLogitsWarper)

    model, tokenizer = reference
    view = jupyter_aigc.next_token_view(PROMPT)
    ids = tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        expected = model(input_ids=ids).logits[0, -1].float().numpy()
    assert view.logits.shape == (len(tokenizer),)
    np.testing.assert_allclose(view.logits, expected, atol=1e-3, rtol=1e-4)
    for temperature, top_k, top_p in [(1.0, 0, 1.0), (0.7, 0, 1.0), (1.3, 50, 1.0), (1.0, 0, 0.9),
                                      (0.8, 20, 0.95), (2.0, 5, 0.5), (0.3, 0, 0.99)]:
        warpers = [TemperatureLogitsWarper(temperature)]
        warpers += [TopKLogitsWarper(top_k)] if top_k else []
        warpers += [TopPLogitsWarper(top_p)] if top_p < 1 else []
        scores = LogitsProcessorList(warpers)(ids, torch.tensor(view.logits)[None].clone())
        probs = scores.softmax(-1)[0].double().numpy()
        kept = np.flatnonzero(probs > 0)
        ids, shown = distribution(view.logits, temperature, top_k, top_p)
        assert sorted(ids.tolist()) == kept.tolist(), (temperature, top_k, top_p)
        np.testing.assert_allclose(shown, probs[ids], rtol=1e-4, atol=1e-7)  # torch softmaxes in float32
        assert np.all(np.diff(shown) <= 1e-12), "most likely first"
        tokens, _ = view.distribution(temperature, top_k, top_p)
        assert tokens == [tokenizer.decode([i]) for i in ids]
    tokens, probs = view.distribution(0.0)
    assert tokens == [" Paris"] and probs.tolist() == [1.0], "temperature 0 is greedy"


def test_stepping_on_appends_and_rescores(shell):
    import jupyter_aigc

    view = jupyter_aigc.next_token_view(PROMPT)
    paris = int(np.argmax(view.logits))
    view._handle_message(view, {"type": "append", "id": paris, "prob": 0.5, "rank": 1, "how": "greedy"}, [])
    assert view.text == PROMPT + " Paris" and view.path[-1]["text"] == " Paris" and view.path[-1]["how"] == "greedy"
    assert int(np.argmax(view.logits)) != paris, "the next token is scored after the new one"
    view._handle_message(view, {"type": "undo"}, [])
    assert view.text == PROMPT and view.path == [] and int(np.argmax(view.logits)) == paris


def test_attention_steps_equal_the_models_own_probabilities_and_head_output(shell, reference):
    import jupyter_aigc

    model, tokenizer = reference
    layer, head = 4, 7
    steps = jupyter_aigc.attention_steps(STORY, layer, head, query=-1)
    ids = tokenizer(STORY, return_tensors="pt")["input_ids"]
    n = ids.shape[-1]
    captured = {}
    attn = model.model.layers[layer].self_attn
    hook = attn.o_proj.register_forward_pre_hook(lambda m, args: captured.update(out=args[0]))
    with torch.inference_mode():
        out = model(input_ids=ids, output_attentions=True)
    hook.remove()
    own = out.attentions[layer][0, head, n - 1].numpy()
    head_dim = model.config.hidden_size // model.config.num_attention_heads
    own_output = captured["out"][0, n - 1].view(-1, head_dim)[head].numpy()
    np.testing.assert_allclose(steps.weights, own, atol=1e-5)
    np.testing.assert_allclose(steps.output, own_output, atol=1e-4)
    assert steps.q.shape == (head_dim,) and steps.k.shape == (n, head_dim) and steps.v.shape == (n, head_dim)
    np.testing.assert_allclose(steps.scores, steps.k @ steps.q / math.sqrt(head_dim), rtol=1e-5)
    groups = model.config.num_attention_heads // model.config.num_key_value_heads
    assert steps.steps.kv_head == head // groups == 2, "query head 7 reads key/value head 2 of 3"
    early = jupyter_aigc.attention_steps(STORY, layer, head, query=3)
    assert early.weights[4:].sum() == 0 and early.mask.tolist() == [True] * 4 + [False] * (n - 4)
    np.testing.assert_allclose(early.weights, out.attentions[layer][0, head, 3].numpy(), atol=1e-5)
    tokens = [tokenizer.decode([i]).strip() for i in ids[0].tolist()]
    word = next(t for t in tokens[2:] if t.isalpha())
    named = jupyter_aigc.attention_steps(STORY, layer, head, query=word)
    assert named.steps.query == tokens.index(word), "--query takes a word of the text: its first token"


def test_sinusoidal_matrix_follows_the_formula_and_rotary_depends_on_the_offset_only(shell):
    import jupyter_aigc

    view = jupyter_aigc.positional_encoding(d_model=16, positions=40)
    for pos in (0, 1, 7, 39):
        for i in range(8):
            assert view.matrix[pos, 2 * i] == pytest.approx(math.sin(pos / 10000 ** (2 * i / 16)))
            assert view.matrix[pos, 2 * i + 1] == pytest.approx(math.cos(pos / 10000 ** (2 * i / 16)))
    similarity = view.similarity
    assert similarity[10, 11] > similarity[10, 30], "nearby positions are alike"
    rotary = jupyter_aigc.positional_encoding(model="SmolLM2-135M-Instruct").rotary
    theta = 100000.0  # SmolLM2's rope_theta
    d = len(rotary.q)
    np.testing.assert_allclose(rotary.inv_freq, 1 / theta ** (np.arange(0, d, 2) / d), rtol=1e-6)
    for offset in (0, 3, 17):
        assert rotary.score(offset + 5, 5) == pytest.approx(rotary.score(offset + 90, 90), rel=1e-6, abs=1e-6)
    assert rotary.score(5, 5) != pytest.approx(rotary.score(25, 5))


def test_logit_lens_last_layer_is_the_models_prediction(shell, reference):
    import jupyter_aigc

    model, tokenizer = reference
    lens = jupyter_aigc.logit_lens(PROMPT)
    ids = tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        probs = model(input_ids=ids).logits[0].softmax(-1)
    assert lens.lens.shape == (model.config.num_hidden_layers + 1, ids.shape[-1])
    assert lens.top_tokens[-1] == [tokenizer.decode([i]) for i in probs.argmax(-1).tolist()]
    np.testing.assert_allclose(lens.top_probs[-1], probs.max(-1).values.numpy(), atol=1e-4)
    assert lens.top_tokens[-1][-1] == " Paris"


@pytest.mark.parametrize("cell, message", [
    ("%%aigc_attention --steps --layer 30\nhi there", "Layer 30 is out of range: SmolLM2-135M-Instruct has 30 layers"),
    ("%%aigc_attention --steps --head 9\nhi there", "Head 9 is out of range"),
    ("%%aigc_attention --steps --query 40\nhi there", "Query 40 is out of range: the text is"),
    ("%%aigc_attention --steps --query cat\nhi there", "No token of the text is 'cat'. Give a position (0 to"),
    ("%%aigc_next -m openai:gpt-4o-mini\nhi", "gives no next-token scores"),
    ("%%aigc_next\n", "the cell body is empty"),
    ("%%aigc_lens\n   ", "There is no text to look at"),
    ("%aigc_positional --d-model 7", "--d-model 7 is odd"),
    ("%aigc_positional --positions x", "invalid int value"),
    ("%%aigc_next --temperature 3\nhi", "--temperature 3"),
    ("%%aigc_next --top-p 0\nhi", "--top-p 0"),
])
def test_bad_input_is_one_line(shell, cell, message, capsys):
    result = shell.run_cell(cell)
    err = capsys.readouterr().err
    assert not result.success and message in err and "Traceback" not in err, err


def bundle(view) -> dict:
    """The static copy shown after the widget (the widget's own output has no HTML stand-in)."""
    data = view._repr_mimebundle_()
    assert "text/html" not in (data[0] if isinstance(data, tuple) else data)
    return view.static_bundle()


def test_static_copies_for_saved_notebooks(shell):
    import jupyter_aigc

    from hostile_server import dangerous_markup

    views = [jupyter_aigc.next_token_view('Say <img src=x onerror="alert(1)"> and'),
             jupyter_aigc.attention_steps(STORY, 0, 0), jupyter_aigc.positional_encoding(model="SmolLM2-135M-Instruct"),
             jupyter_aigc.logit_lens(PROMPT)]
    for view in views:
        html = bundle(view)["text/html"]
        assert html and dangerous_markup(html) == [], type(view).__name__
    assert "Paris" in bundle(views[3])["text/html"] and "onerror" in bundle(views[0])["text/html"], "shown as text"


def test_next_token_presets_start_the_sliders_and_the_static_copy(shell):
    from jupyter_aigc.tasks.teach import distribution

    assert run_cell(shell, "aigc_next", "--temperature 0.7 --top-k 20 --top-p 0.9 -o nt", PROMPT).success
    view = shell.user_ns["nt"]
    assert view.start == {"temperature": 0.7, "top_k": 20, "top_p": 0.9}
    ids, probs = distribution(view.logits, 0.7, 20, 0.9)
    copy = view.static_bundle()["text/html"]
    assert "temperature 0.7; top-k 20; top-p 0.9" in copy and f"{probs[0]:.1%}" in copy
