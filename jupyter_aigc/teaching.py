"""The teaching views as Python functions (each also a magic): they need `%load_ext jupyter_aigc` first.

Each view has ``.save("x.svg")`` / ``.save("x.png")`` and a caption: ``caption=False`` hides it, a text replaces it.
"""

from __future__ import annotations


def _session():
    from . import get_session

    return get_session()


def captioned(view, caption: bool | str = True):
    """``view`` with ``caption``: True keeps its own, False (or "") hides it, a text replaces it."""
    if caption is not True:
        view.caption = str(caption or "")
    return view


def next_token_view(prompt: str, model: str | None = None, chat: bool = False, temperature: float = 1.0,
                    top_k: int = 0, top_p: float = 1.0, caption: bool | str = True):
    """The next-token explorer for ``prompt`` (as given; ``chat=True`` wraps it in the chat template), its
    sliders starting at ``temperature``, ``top_k`` and ``top_p``.

    ``.logits`` is the raw score of every token; ``.distribution(temperature, top_k, top_p)`` the tokens
    and probabilities after those transforms, in transformers' order.
    """
    from .options import check
    from .tasks.teach import NextToken
    from .views.widgets.teaching import NextTokenView

    start = {"temperature": check("temperature", temperature), "top_k": check("top_k", top_k),
             "top_p": check("top_p", top_p)}  # before the model is loaded
    return captioned(NextTokenView(NextToken(_session(), prompt, model, chat), start=start), caption)


def attention_steps(text: str, layer: int, head: int, query: int | str = -1, model: str | None = None,
                    caption: bool | str = True):
    """One head, one query token (a position, or a word of the text such as "it"), worked through: ``.q``, ``.k``, ``.scores``, ``.weights``, ``.v``, ``.output``."""
    from .tasks.steps import attention_steps as compute
    from .views.widgets.teaching import AttentionStepsView

    return captioned(AttentionStepsView(compute(_session(), text, layer, head, query, model)), caption)


def positional_encoding(d_model: int = 64, positions: int = 128, model: str | None = None,
                        caption: bool | str = True):
    """The sinusoidal encoding (``.matrix``, ``.similarity``) and, with ``model``, its rotary encoding."""
    from .tasks.steps import positional_size, rotary_of
    from .views.widgets.teaching import PositionalView

    d_model, positions = positional_size(d_model, positions)  # before the model is loaded
    return captioned(PositionalView(d_model, positions, rotary_of(_session(), model) if model else None), caption)


def logit_lens(text: str, model: str | None = None, caption: bool | str = True):
    """Each layer's prediction for the next token at every position: ``.top_tokens[layer][position]``."""
    from .tasks.teach import logit_lens as compute
    from .views.widgets.teaching import LogitLensView

    return captioned(LogitLensView(compute(_session(), text, model)), caption)


def generation_trace(prompt: str, strategy: str = "greedy", steps: int = 12, num_beams: int = 3,
                     temperature: float = 1.0, top_k: int = 50, top_p: float = 1.0, seed: int | None = None,
                     compare=None, model: str | None = None, chat: bool = False, caption: bool | str = True,
                     cancel=None):
    """A whole generation step by step: ``strategy`` greedy, sample or beam (``compare="greedy,sample,beam"``
    puts several side by side). ``.ids`` holds the generated token ids (the best beam's), ``.traces`` each
    strategy's steps (candidates, the token taken, the key/value cache and its timings), ``.beams`` the final
    beams. ``cancel``: a ``threading.Event`` that ends the generation at the next step."""
    from .tasks.generation import generation_traces, plans
    from .views.waiting import notice
    from .views.widgets.generation_view import GenerationView

    todo = plans(strategy, steps, num_beams, temperature, top_k, top_p, seed, compare)  # before the model loads
    traces = generation_traces(_session(), prompt, todo, model, chat, cancel, progress=notice)  # on a wait's line
    return captioned(GenerationView(traces), caption)


def _one_line(build):
    """The image lab's views: a user's mistake (a wrong name or kind) is one line, as in a magic."""
    from .core.errors import AigcError
    from .magics import usage_error

    try:
        return build()
    except AigcError as error:
        raise usage_error(error) from None


def latent_map(name: str, digit=None, caption: bool | str = True):
    """A trained VAE's latent plane for one class (``digit``: 7, "7", "seven"; default the first class): decoded
    images over it and a point to drag, decoded in the browser with the decoder's own weights."""
    from .tasks.lab_lessons import latent_map_view

    return captioned(_one_line(lambda: latent_map_view(_session(), name, digit)), caption)


def denoising_view(name: str, prompt: str = "7", seed: int = 0, steps: int = 50, caption: bool | str = True):
    """One sample of a trained diffusion model, from pure noise to the image, with a slider over the steps."""
    from .tasks.lab_lessons import denoising_view as build

    return captioned(_one_line(lambda: build(_session(), name, prompt, seed, steps)), caption)


def gan_diversity(name: str, caption: bool | str = True):
    """A trained GAN's sample diversity over the epochs against the real images', with its sample grids."""
    from .tasks.lab_lessons import gan_diversity_view

    return captioned(_one_line(lambda: gan_diversity_view(_session(), name)), caption)


def tokens_view(text: str, model: str | None = None, compare=None, word: str | None = None,
                caption: bool | str = True):
    """``text`` as ``model``'s tokens (``.ids`` = ``tokenizer.encode``, ``.tokens``, ``.pieces``), each with its id
    and bytes; ``compare`` (a comma list or a list of local models) lines up other tokenizers beneath. For a BPE
    tokenizer, ``word`` (default: the longest word) is built from its bytes merge by merge (``.merge_steps``,
    ``.steps(word)``). Only the tokenizers are loaded, not the weights."""
    from .tasks.tokens import load_tokenizer, tokenize
    from .views.widgets.tokens_view import TokensView

    def build():
        session = _session()
        names = [model, *_names(compare)]
        tokenizers = [load_tokenizer(session, name) for name in names]
        unique = []
        for tokenizer in tokenizers:
            if all(tokenizer.name != other.name for other in unique):
                unique.append(tokenizer)
        return TokensView([tokenize(t, text) for t in unique], unique[0], word)

    return captioned(_one_line(build), caption)


def _names(compare) -> list[str]:
    if compare is None:
        return []
    names = [n.strip() for n in (compare.split(",") if isinstance(compare, str) else compare)]
    if not all(names):
        from .core.errors import AigcError

        raise AigcError(f"--compare {compare!r} has an empty name.", "Give comma-separated local models, e.g. "
                        "--compare SmolLM2-135M-Instruct,./my-model.")
    return names


def train_tokenizer(texts, vocab_size: int = 300, caption: bool | str = True):
    """A byte-level BPE trained on ``texts`` (a string or a list of strings) with the ``tokenizers`` library's
    BpeTrainer, up to ``vocab_size`` tokens; the view's slider cuts the vocabulary and tokenises the text again
    in the browser. ``.tokens(k)`` / ``.ids(k)``: the text with the first ``k`` tokens of the vocabulary,
    ``.tokenizer`` the trained ``tokenizers.Tokenizer``, ``.merges`` in the order learned."""
    from .tasks.tokens import train_bpe
    from .views.widgets.tokens_view import VocabularyView

    return captioned(_one_line(lambda: VocabularyView(train_bpe(texts, vocab_size))), caption)
