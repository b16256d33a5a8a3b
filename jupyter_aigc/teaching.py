"""The teaching views as Python functions (each also a magic): they need `%load_ext jupyter_aigc` first."""

from __future__ import annotations


def _session():
    from . import get_session

    return get_session()


def next_token_view(prompt: str, model: str | None = None, chat: bool = False):
    """The next-token explorer for ``prompt`` (as given; ``chat=True`` wraps it in the chat template).

    ``.logits`` is the raw score of every token; ``.distribution(temperature, top_k, top_p)`` the tokens
    and probabilities after those transforms, in transformers' order.
    """
    from .tasks.teach import NextToken
    from .views.widgets.teaching import NextTokenView

    return NextTokenView(NextToken(_session(), prompt, model, chat))


def attention_steps(text: str, layer: int, head: int, query: int | str = -1, model: str | None = None):
    """One head, one query token (a position, or a word of the text such as "it"), worked through: ``.q``, ``.k``, ``.scores``, ``.weights``, ``.v``, ``.output``."""
    from .tasks.steps import attention_steps as compute
    from .views.widgets.teaching import AttentionStepsView

    return AttentionStepsView(compute(_session(), text, layer, head, query, model))


def positional_encoding(d_model: int = 64, positions: int = 128, model: str | None = None):
    """The sinusoidal encoding (``.matrix``, ``.similarity``) and, with ``model``, its rotary encoding."""
    from .tasks.steps import positional_size, rotary_of
    from .views.widgets.teaching import PositionalView

    d_model, positions = positional_size(d_model, positions)  # before the model is loaded
    return PositionalView(d_model, positions, rotary_of(_session(), model) if model else None)


def logit_lens(text: str, model: str | None = None):
    """Each layer's prediction for the next token at every position: ``.top_tokens[layer][position]``."""
    from .tasks.teach import logit_lens as compute
    from .views.widgets.teaching import LogitLensView

    return LogitLensView(compute(_session(), text, model))


def _one_line(build):
    """The image lab's views: a user's mistake (a wrong name or kind) is one line, as in a magic."""
    from .core.errors import AigcError
    from .magics import usage_error

    try:
        return build()
    except AigcError as error:
        raise usage_error(error) from None


def latent_map(name: str, digit=None):
    """A trained VAE's latent plane for one class (``digit``: 7, "7", "seven"; default the first class): decoded
    images over it and a point to drag, decoded in the browser with the decoder's own weights."""
    from .tasks.lab_lessons import latent_map_view

    return _one_line(lambda: latent_map_view(_session(), name, digit))


def denoising_view(name: str, prompt: str = "7", seed: int = 0, steps: int = 50):
    """One sample of a trained diffusion model, from pure noise to the image, with a slider over the steps."""
    from .tasks.lab_lessons import denoising_view as build

    return _one_line(lambda: build(_session(), name, prompt, seed, steps))


def gan_diversity(name: str):
    """A trained GAN's sample diversity over the epochs against the real images', with its sample grids."""
    from .tasks.lab_lessons import gan_diversity_view

    return _one_line(lambda: gan_diversity_view(_session(), name))
