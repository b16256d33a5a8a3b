"""%%aigc_generate / generation_trace against transformers on the default model (its converted safetensors folder,
loaded here separately from the kernel's cache): the greedy trace is generate(do_sample=False), the beam trace's
final beams and scores are generate(num_beams=k)'s and its tree adds up to them, a seeded sample repeats and is
generate(do_sample=True)'s draw, and the key/value cache's bytes are 2 × layers × kv heads × head size × tokens ×
bytes per element, as the real cache tensors hold."""

import threading
import xml.etree.ElementTree as ElementTree

import pytest
import torch

from conftest import run_cell

pytestmark = pytest.mark.slow
PROMPT = "The capital of France is"
QUESTION = "What is 2+2? Answer with one number."


@pytest.fixture(scope="module")
def reference(default_gguf):
    """The default model's weights loaded by this test itself."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from jupyter_aigc.core.convert import safetensors_folder

    folder = safetensors_folder(default_gguf)
    return AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)


def encoded(tokenizer, text: str, chat: bool = False) -> dict:
    if chat:
        return tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                             return_tensors="pt", return_dict=True)
    return tokenizer(text, return_tensors="pt")


def test_greedy_trace_is_generate_without_sampling(shell, reference):
    import jupyter_aigc

    model, tokenizer = reference
    view = jupyter_aigc.generation_trace(PROMPT, steps=12)
    inputs = encoded(tokenizer, PROMPT)
    n = inputs["input_ids"].shape[-1]
    with torch.inference_mode():
        expected = model.generate(**inputs, do_sample=False, max_new_tokens=12)[0, n:].tolist()
        logits = model(**inputs).logits[0, -1]
    assert view.ids == expected and len(view.ids) == 12
    assert view.text == tokenizer.decode(expected) and view.trace.prompt_ids == inputs["input_ids"][0].tolist()
    steps = view.trace.steps
    assert [s["token"]["id"] for s in steps] == expected and all(s["token"]["rank"] == 1 for s in steps)
    probs = logits.softmax(-1)
    first = steps[0]["candidates"]
    assert [c["id"] for c in first] == torch.topk(logits, len(first)).indices.tolist()
    assert [c["p"] for c in first] == pytest.approx([float(probs[c["id"]]) for c in first], rel=1e-4, abs=1e-7)
    assert first[0]["text"] == " Paris"


@pytest.mark.parametrize("text, chat, k, steps", [(PROMPT, False, 3, 8), (QUESTION, True, 4, 16)])
def test_beam_trace_is_generates_beam_search(shell, reference, text, chat, k, steps):
    import jupyter_aigc

    model, tokenizer = reference
    view = jupyter_aigc.generation_trace(text, "beam", steps=steps, num_beams=k, chat=chat)
    inputs = encoded(tokenizer, text, chat)
    n = inputs["input_ids"].shape[-1]
    with torch.inference_mode():
        out = model.generate(**inputs, num_beams=k, num_return_sequences=k, do_sample=False, max_new_tokens=steps,
                             output_scores=True, return_dict_in_generate=True)
        logits = model(**inputs).logits[0, -1]
    pad = model.generation_config.pad_token_id
    trace = view.trace
    assert len(view.beams) == k
    for beam, sequence, score in zip(view.beams, out.sequences.tolist(), out.sequences_scores.tolist()):
        generated = sequence[n:]
        assert generated[:beam["length"]] == beam["ids"] and all(t == pad for t in generated[beam["length"]:])
        assert beam["score"] == pytest.approx(score, rel=1e-5)
        # the tree adds up: the tokens' log-probabilities along the path / length = transformers' score
        path, node = [], trace.nodes[beam["node"]]
        while True:
            path.insert(0, node)
            if node["parent"] < 0:
                break
            node = trace.nodes[node["parent"]]
        assert [m["token"] for m in path] == beam["ids"]
        assert sum(m["logp"] for m in path) == pytest.approx(beam["logp"], abs=1e-3)
        assert beam["logp"] / beam["length"] ** 1.0 == pytest.approx(score, rel=1e-5)
        assert all(m["status"] == "kept" for m in path[:-1]), "a final beam grows from kept beams"
    assert view.ids == view.beams[0]["ids"]
    # every step weighs 2·k candidates (one end token): the k best that did not end go on, the rest are pruned
    for step in trace.steps[:-1]:
        statuses = [trace.nodes[i]["status"] for i in step["candidates"]]
        assert len(statuses) == 2 * k and statuses.count("kept") == k and "pruned" in statuses
    first = [trace.nodes[i] for i in trace.steps[0]["candidates"]]
    values, ids = torch.topk(logits.log_softmax(-1), 2 * k)
    assert [m["token"] for m in first] == ids.tolist() and all(m["parent"] == -1 for m in first)
    assert [m["score"] for m in first] == pytest.approx(values.tolist(), abs=1e-4)
    if chat:
        eos = model.generation_config.eos_token_id
        ended = [m for m in trace.nodes if m["token"] == eos]
        assert ended and any(m["status"] == "ended" for m in ended), "the answer ends with an end token"
        assert any(b["ids"][-1] == eos for b in view.beams)


def test_a_seeded_sample_repeats_and_is_transformers_draw(shell, reference):
    import jupyter_aigc
    from transformers.generation.logits_process import (LogitsProcessorList, TemperatureLogitsWarper,
                                                        TopKLogitsWarper, TopPLogitsWarper)

    model, tokenizer = reference
    settings = {"temperature": 0.8, "top_k": 20, "top_p": 0.9}
    first = jupyter_aigc.generation_trace(PROMPT, "sample", steps=10, seed=7, **settings)
    again = jupyter_aigc.generation_trace(PROMPT, "sample", steps=10, seed=7, **settings)
    assert first.ids == again.ids and first.trace.settings["seed"] == 7
    inputs = encoded(tokenizer, PROMPT)
    n = inputs["input_ids"].shape[-1]
    with torch.inference_mode():
        torch.manual_seed(7)
        drawn = model.generate(**inputs, do_sample=True, max_new_tokens=10, **settings)[0, n:].tolist()
        logits = model(**inputs).logits[0, -1]
    assert first.ids == drawn, "the same draws as transformers' own sampler with the same seed"
    warped = LogitsProcessorList([TemperatureLogitsWarper(0.8), TopKLogitsWarper(20), TopPLogitsWarper(0.9)])(
        inputs["input_ids"], logits[None].clone())[0].softmax(-1)
    step = first.trace.steps[0]
    assert step["kept"] == int((warped > 0).sum()) <= 20
    assert [c["p"] for c in step["candidates"]] == pytest.approx([float(warped[c["id"]]) for c in step["candidates"]],
                                                                 rel=1e-4, abs=1e-7)
    unseeded = jupyter_aigc.generation_trace(PROMPT, "sample", steps=6)
    seed = unseeded.trace.settings["seed"]
    assert isinstance(seed, int)
    assert jupyter_aigc.generation_trace(PROMPT, "sample", steps=6, seed=seed).ids == unseeded.ids


def test_the_kv_cache_bytes_follow_the_models_shapes(shell, reference):
    import jupyter_aigc
    from transformers import DynamicCache

    from jupyter_aigc.tasks.generation import cache_tensors, kv_bytes

    model, tokenizer = reference
    config = model.config
    per_token = 2 * config.num_hidden_layers * config.num_key_value_heads * config.head_dim * 4
    assert per_token == 2 * 30 * 3 * 64 * 4, "SmolLM2-135M: 30 layers, 3 key/value heads of 64, float32"
    inputs = encoded(tokenizer, PROMPT)
    n = inputs["input_ids"].shape[-1]
    cache = DynamicCache(config=config)
    with torch.inference_mode():
        model(**inputs, cache=cache)  # transformers 5's name for past_key_values
    assert sum(t.nbytes for t in cache_tensors(cache)) == n * per_token == kv_bytes(config, n, 4)
    for strategy, sequences in (("greedy", 1), ("beam", 3)):
        trace = jupyter_aigc.generation_trace(PROMPT, strategy, steps=5, num_beams=3).trace
        assert trace.cache == {"layers": 30, "kv_heads": 3, "head_dim": 64, "itemsize": 4, "dtype": "float32",
                               "sequences": sequences, "bytes_per_token": per_token}
        for t, step in enumerate(trace.steps):
            assert step["cache"]["tokens"] == step["cache"]["measured_tokens"] == n + t
            assert step["cache"]["bytes"] == step["cache"]["measured"] == sequences * (n + t) * per_token
            assert step["ms"]["cached"] > 0 and step["ms"]["full"] > 0
            assert step["ms"]["full_reads"] == n + t and step["ms"]["reads"] == (1 if t else n)
            assert step["ms"]["drift"] < 1e-3, "with or without the cache, the same next-token scores"


@pytest.mark.parametrize("line, body, message", [
    ("", "", "the cell body is empty"),
    ("", "   ", "There is no prompt to continue"),
    ("--steps 0", PROMPT, "--steps 0 is out of range. Use a value from 1 to 64."),
    ("--steps 500", PROMPT, "--steps 500 is out of range"),
    ("--strategy beam --num-beams 1", PROMPT, "--num-beams 1 is out of range. Use a value from 2 to 8."),
    ("--num-beams 20", PROMPT, "--num-beams 20 is out of range"),
    ("--strategy nucleus", PROMPT, "Unknown strategy 'nucleus'. Use greedy, sample or beam."),
    ("--compare greedy,topk", PROMPT, "Unknown strategy 'topk'"),
    ("--compare greedy,,beam", PROMPT, "has an empty item"),
    ("--strategy sample --temperature 0", PROMPT, "--temperature 0 is greedy, not sampling."),
    ("--top-k -1", PROMPT, "--top-k -1 is out of range"),
    ("--steps x", PROMPT, "invalid int value"),
    ("-m openai:gpt-4o-mini", PROMPT, "gives no next-token scores"),
])
def test_bad_input_is_one_line(shell, line, body, message, capsys):
    result = run_cell(shell, "aigc_generate", line, body)
    err = capsys.readouterr().err
    assert not result.success and message in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err


def test_bad_input_in_python_is_refused_before_the_model_loads(shell):
    import jupyter_aigc
    from jupyter_aigc.core.errors import AigcError

    session = jupyter_aigc.get_session()
    session.cache.clear()
    for kwargs in ({"strategy": "nope"}, {"steps": 0}, {"strategy": "beam", "num_beams": 99}, {"compare": "beam,beam"}):
        with pytest.raises(AigcError):
            jupyter_aigc.generation_trace(PROMPT, **kwargs)
    assert len(session.cache) == 0, "no model was loaded for a request that is refused"


def test_stop_ends_the_generation(shell):
    import jupyter_aigc
    from jupyter_aigc.core.cancel import Interrupted

    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Interrupted):
        jupyter_aigc.generation_trace(PROMPT, steps=12, cancel=cancel)


def test_the_magic_compares_strategies_and_leaves_a_safe_static_copy(shell, tmp_path):
    from hostile_server import dangerous_markup

    from jupyter_aigc.views.widgets.generation_view import GenerationView

    result = run_cell(shell, "aigc_generate", "--compare greedy,sample,beam --steps 4 --seed 1 -o g", PROMPT)
    assert result.success, result.error_in_exec
    view = shell.user_ns["g"]
    assert isinstance(view, GenerationView) and [t.strategy for t in view.traces] == ["greedy", "sample", "beam"]
    assert set(view.ids) == {"greedy", "sample", "beam"} and all(len(ids) == 4 for ids in view.ids.values())
    assert [run["strategy"] for run in view.runs] == ["greedy", "sample", "beam"]
    assert view.caption and view.beams == view.traces[2].beams
    html = view.static_bundle()["text/html"]
    assert "Beam search" in html and "Paris" in html and dangerous_markup(html) == []
    assert html.count(" src=\"data:image/png;base64,") == 1, "the picture of the three runs, then their numbers"
    hostile = run_cell(shell, "aigc_generate", "--steps 2 --caption off -o h",
                       "Say sk-proj-abcdefghijklmnopqrstuvwxyz0123456789" + " more" * 31
                       + ' <img src=x onerror="alert(1)"> end')  # the copy shows the last 200 characters: a cut key
    assert hostile.success
    html = shell.user_ns["h"].static_bundle()["text/html"]
    assert "onerror" in html and dangerous_markup(html) == [], "the prompt is shown as text"
    svg = shell.user_ns["h"].save(tmp_path / "h.svg").read_text()
    assert "0123456789" not in html + svg, "masked before it is cut: no half key escapes the mask"
    assert shell.user_ns["h"].caption == ""
    svg, png = view.save(tmp_path / "g.svg"), view.save(tmp_path / "g.png")
    ElementTree.parse(svg)  # well-formed
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_memory_budget_and_the_context_are_checked_before_generating(shell, capsys):
    shell.run_line_magic("config", "AigcConfig.attention_budget_gb = 0.3")
    result = run_cell(shell, "aigc_generate", "--strategy beam", PROMPT)
    err = capsys.readouterr().err
    assert not result.success and "The beam trace of" in err and "over the 0.3 GB budget" in err, err
    assert "attention_budget_gb" in err and len(err.strip().splitlines()) == 1
    shell.run_line_magic("config", "AigcConfig.attention_budget_gb = 64")
    result = run_cell(shell, "aigc_generate", "--steps 64", "hello " * 8150)
    err = capsys.readouterr().err
    assert not result.success and "64 more would pass the 8192 tokens SmolLM2-135M-Instruct reads" in err, err
