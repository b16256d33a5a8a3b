"""Attention maps: recomputed by hand on a tiny model, checked on the real default model, packed small."""

import math

import numpy as np
import pytest
import torch

from jupyter_aigc.tasks.attention import (AttentionMaps, downsample, eager_attention, extract, head_matrix, parse_range, quantize,
                                    rollout, thumbnails)
from jupyter_aigc.core.errors import AigcError

from conftest import run_cell
from peak_memory import PEAK_GB, run_child


def load(folder):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)


def test_maps_equal_softmax_qk_over_sqrt_d_with_causal_mask(tiny_model):
    """Capture each layer's input, rebuild Q and K (with RoPE), and recompute softmax(QKᵀ/√dₖ) by hand."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    model, tokenizer = load(tiny_model)
    captured = {}

    def capture(layer):
        def hook(module, args, kwargs):
            captured[layer] = (kwargs.get("hidden_states", args[0] if args else None), kwargs["position_embeddings"])
        return hook

    handles = [blk.self_attn.register_forward_pre_hook(capture(i), with_kwargs=True)
               for i, blk in enumerate(model.model.layers)]
    maps = extract(model, tokenizer, "The capital of France is Paris, hello world.", "tiny")
    for h in handles:
        h.remove()
    config = model.config
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    d = config.hidden_size // heads
    n = len(maps.tokens)
    assert maps.shape == (config.num_hidden_layers, heads, n, n)
    for layer, block in enumerate(model.model.layers):
        hidden, (cos, sin) = captured[layer]
        attn = block.self_attn
        with torch.no_grad():
            q = attn.q_proj(hidden).view(1, n, heads, d).transpose(1, 2)
            k = attn.k_proj(hidden).view(1, n, kv_heads, d).transpose(1, 2)
            q, k = apply_rotary_pos_emb(q, k, cos, sin)
        for head in range(heads):
            kv = head // (heads // kv_heads)  # grouped-query: query head h reads key head h // group
            scores = (q[0, head] @ k[0, kv].T) / math.sqrt(d)
            scores = scores.masked_fill(torch.triu(torch.ones(n, n, dtype=torch.bool), 1), float("-inf"))
            expected = scores.softmax(-1).numpy()
            np.testing.assert_allclose(maps.weights[layer, head], expected, atol=1e-5)
    assert not np.allclose(maps.weights[0, 0], maps.weights[0, 1]), "query heads sharing a KV head still differ"


def test_eager_switch_is_temporary(tiny_model):
    model, tokenizer = load(tiny_model)
    before = model.config._attn_implementation
    extract(model, tokenizer, "hello world", "tiny")
    assert model.config._attn_implementation == before
    with eager_attention(model):
        assert model.config._attn_implementation == "eager"
    assert model.config._attn_implementation == before


def test_encoder_models_are_bidirectional(tmp_path):
    from transformers import BertConfig, BertModel

    from conftest import make_tokenizer

    tokenizer = make_tokenizer()
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=128)
    model = BertModel(config).eval()
    maps = extract(model, tokenizer, "hello world, notebooks are for thinking", "tiny-bert")
    assert not maps.causal
    assert maps.weights[0, 0][np.triu_indices(len(maps.tokens), 1)].sum() > 0.1, "keys after the query get weight"
    np.testing.assert_allclose(maps.weights.sum(-1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_default_model_maps_are_causal_distributions(shell):
    import jupyter_aigc
    from jupyter_aigc import get_session

    view = jupyter_aigc.attention_view("The quick brown fox jumps over the lazy dog. " * 3)
    weights = view.arrays()
    n = len(view.tokens)
    assert weights.shape == (30, 9, n, n)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-3)
    assert np.abs(weights[..., np.triu_indices(n, 1)[0], np.triu_indices(n, 1)[1]]).max() == 0
    stats = get_session().cache.stats()
    assert [(s["name"], s["engine"]) for s in stats] == [("SmolLM2-135M-Instruct", "transformers")], \
        "the transformers copy of the default weights, and no second one"
    session = get_session()
    with session.engines["transformers"].use(session.resolve(None, engine="transformers")) as (model, _):
        assert model.config._attn_implementation == "sdpa", "generation keeps its attention implementation"


def test_packing_is_small_and_8_bit():
    rng = np.random.default_rng(0)
    n = 512
    raw = rng.random((30, 9, n, n), dtype=np.float32)
    raw = np.tril(raw)
    raw /= raw.sum(-1, keepdims=True)

    maps = AttentionMaps.from_weights(raw, ["t"] * n, causal=True)
    data, (side, scales) = thumbnails(maps, list(range(30)), list(range(9)))
    assert side == 64 and len(data) == (30 * 9 + 30 + 1) * 64 * 64
    assert len(data) <= 2 * 2**20, "first view under 2 MB"
    full, top = head_matrix(maps, 3, 4)
    assert len(full) == n * n and top == pytest.approx(raw[3, 4].max())
    bertviz_json = raw.size * len("0.123456, ")
    assert bertviz_json / len(data) > 300


def test_quantize_downsample_and_rollout():
    m = np.array([[1.0, 0.0], [0.25, 0.75]], dtype=np.float32)
    data, top = quantize(m)
    assert list(data) == [255, 0, 64, 191] and top == 1.0
    big = np.zeros((128, 128), dtype=np.float32)
    big[100, 3] = 1.0
    small = downsample(big, 64)
    assert small.shape == (64, 64) and small[50, 1] == 1.0, "max pooling keeps a single strong link"
    w = np.tile(np.eye(4, dtype=np.float32), (2, 3, 1, 1))
    np.testing.assert_allclose(rollout(AttentionMaps.from_weights(w, ["t"] * 4, causal=True)), np.eye(4), atol=1e-6)


def test_range_parsing_and_errors():
    assert parse_range("0-2,5", 9, "heads") == [0, 1, 2, 5]
    assert parse_range(None, 3, "layers") == [0, 1, 2]
    with pytest.raises(AigcError, match="out of range: the model has 9 heads"):
        parse_range("9", 9, "heads")
    with pytest.raises(AigcError, match="not a list of numbers"):
        parse_range("a-b", 9, "heads")


def test_magic_and_errors(shell, tiny_model, capsys):
    run_cell(shell, "aigc_attention", f"-m {tiny_model} --layers 1 --heads 0-1 -o view", "hello world")
    view = shell.user_ns["view"]
    assert view.arrays().shape[:2] == (1, 2) and view.layers == [1] and view.heads == [0, 1]
    run_cell(shell, "aigc_attention", f"-m {tiny_model} --layers 7", "hello")
    assert "--layers 7 is out of range" in capsys.readouterr().err
    run_cell(shell, "aigc_attention", "-m openai:gpt-4o", "hello")
    assert "gives no attention weights" in capsys.readouterr().err
    run_cell(shell, "aigc_attention", f"-m {tiny_model}", "   ")
    assert "There is no text" in capsys.readouterr().err


def test_head_requests_over_the_widget_channel(shell, tiny_model):
    run_cell(shell, "aigc_attention", f"-m {tiny_model} -o view", "hello world")
    view = shell.user_ns["view"]
    sent = []
    view.send = lambda content, buffers=None: sent.append((content, buffers))
    view._handle_message(view, {"type": "head", "id": 1, "layer": 1, "head": 2}, [])
    view._handle_message(view, {"type": "head", "id": 2, "layer": 5, "head": 0}, [])
    (ok, buffers), (bad, _) = sent
    n = len(view.tokens)
    assert ok["n"] == n and len(buffers[0]) == n * n and "error" not in ok
    assert "not in this view" in bad["error"]


def test_gpt_attention_opens_the_view_of_prompt_and_answer(shell, tiny_model, capsys):
    run_cell(shell, "gpt", f"-m {tiny_model} --temperature 0 --max-tokens 4 --attention -o answer --new", "hi")
    out = capsys.readouterr()
    assert f"Attention of {tiny_model.name}" in out.out and "Traceback" not in out.out + out.err
    assert "(the answer: tokens " in out.out, "where the generated tokens begin, found in the chat template's text"


def test_the_answer_is_marked_where_it_begins(shell, tiny_model):
    import jupyter_aigc

    view = jupyter_aigc.attention_view("The capital of France is", model=str(tiny_model), answer=" Paris, of course.")
    start, end = view.answer
    assert "".join(view.tokens[:start]) == "The capital of France is"
    assert "".join(view.tokens[start:end]) == " Paris, of course." and end == len(view.tokens)
    assert "answer →" in view.static_bundle()["text/html"]
    assert jupyter_aigc.attention_view("No answer here", model=str(tiny_model)).answer == []


def test_long_text_is_cut_to_the_context_and_says_so(shell, tiny_model, capsys):
    words = " ".join(["hello world"] * 3000)
    result = run_cell(shell, "aigc_attention", f"-m {tiny_model} -o view", words)
    assert result.success
    view = shell.user_ns["view"]
    err = capsys.readouterr().err
    assert len(view.tokens) == 4096, "the tiny model's context"
    assert f"the view shows the first 4096 (the model's context)" in err and "tokens" in err


def test_an_input_over_the_memory_budget_is_refused_with_an_estimate(shell, tiny_model, capsys):
    shell.run_line_magic("config", "AigcConfig.attention_budget_gb = 0.1")
    result = run_cell(shell, "aigc_attention", f"-m {tiny_model}", " ".join(["hello world"] * 2000))
    err = capsys.readouterr().err
    assert not result.success and "GB with the model" in err and "over the 0.1 GB budget" in err
    assert "Shorten the text to about" in err and "attention_budget_gb" in err and "Traceback" not in err


@pytest.mark.slow
def test_2048_tokens_of_the_default_model_peak_under_3_gb(tmp_path):
    """In a process of its own: the peak resident memory of the attention view of 2,048 tokens."""
    code = """
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance(); ip.run_line_magic("load_ext", "jupyter_aigc")
import jupyter_aigc
s = jupyter_aigc.get_session()
with s.engines["transformers"].use(s.resolve(None, engine="transformers")) as (_, tok):
    ids = tok(" ".join(["The keeper wrote down every ship, every storm and every quiet night."] * 200))["input_ids"]
view = jupyter_aigc.attention_view(tok.decode(ids[:2048]))
print(len(view.tokens), PEAK_GB)
""".replace("PEAK_GB", PEAK_GB)
    out, peak = run_child(code, cwd=tmp_path)
    assert int(out.split()[-2]) == 2048
    assert peak < 3.0, f"peak {peak:.2f} GB"
