"""jupyter-aigc: generative models in notebooks. `%load_ext jupyter_aigc` adds %%gpt, %%aigc_* and %aigc."""

__version__ = "0.2.0"

def load_ipython_extension(ipython) -> None:
    """Register the magics; a reload keeps the loaded models, the conversation, history and aliases."""
    from .magics import AigcMagics, AwaitMagics, kernel_serves_comms_while_awaiting
    from .session import AigcSession
    from .teaching_magics import TeachingMagics

    previous = getattr(ipython, "_jupyter_aigc_session", None)
    if previous is not None:
        unload_ipython_extension(ipython)
    session = AigcSession(ipython) if previous is None else previous
    ipython._jupyter_aigc_session = session
    ipython.configurables.append(session.config)
    magics = AigcMagics(ipython, session)
    ipython.register_magics(magics)
    ipython.register_magics(TeachingMagics(ipython, session))
    ipython._jupyter_aigc_magics = magics
    if type(ipython).__name__ == "ZMQInteractiveShell":
        from .views import boundary

        session.status.start()
        boundary.install(ipython.kernel.session)
    if kernel_serves_comms_while_awaiting(ipython):
        ipython.input_transformers_post.append(AwaitMagics())


def unload_ipython_extension(ipython) -> None:
    """Remove the magics and the config object; the session stays for a later %load_ext."""
    from .options import magic_names

    session = getattr(ipython, "_jupyter_aigc_session", None)
    manager = ipython.magics_manager
    for kind in ("cell", "line"):
        for name in magic_names(kind):
            manager.magics[kind].pop(name, None)
    manager.registry.pop("AigcMagics", None)
    manager.registry.pop("TeachingMagics", None)
    ipython.input_transformers_post[:] = [t for t in ipython.input_transformers_post
                                          if type(t).__name__ != "AwaitMagics"]
    if session is not None:
        session.status.stop()
        if session.config in ipython.configurables:
            ipython.configurables.remove(session.config)


from .teaching import (attention_steps, denoising_view, gan_diversity, latent_map, logit_lens,  # noqa: E402,F401
                       next_token_view, positional_encoding)
from .teaching import generation_trace  # noqa: E402,F401
from .teaching import tokens_view, train_tokenizer  # noqa: E402,F401


def get_session():
    """The AigcSession of the running IPython kernel (for the Python API and tests)."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None or getattr(shell, "_jupyter_aigc_session", None) is None:
        raise RuntimeError("Run `%load_ext jupyter_aigc` first.")
    return shell._jupyter_aigc_session


def attention_view(text: str, model: str | None = None, layers: str | None = None, heads: str | None = None,
                   caption: bool | str = True, answer: str | None = None):
    """An AttentionView of ``text`` (e.g. ``attention_view("The cat sat", layers="0-3")``); needs %load_ext.
    ``answer``: a continuation a model generated, appended to ``text`` and marked in the view (the Answer
    button shows the attention each of its tokens paid). ``.save("x.png")`` / ``.save("x.svg")`` saves it;
    ``caption=False`` hides its caption."""
    from IPython import get_ipython

    from .teaching import captioned

    get_session()
    span = None if answer is None else (len(text), len(text) + len(answer))
    view = get_ipython()._jupyter_aigc_magics._attention_view(text + (answer or ""), model, layers, heads, span)
    return captioned(view, caption)


def evaluate(template: str = "", data=None, reference: str | None = None, metrics: str | None = None, **options):
    """Run ``template`` over ``data`` like %%aigc_eval and return the DataFrame (``.attrs['summary']``).

    ``data`` is a list of dicts, a DataFrame, a Dataset or a path; ``metrics`` a comma list or a list;
    ``options`` are %%aigc_eval's options by name, e.g. ``compare="m1,m2"``, ``temperature="0,0.8"``;
    multiple choice is ``task="choice", choices="options", answer="label"`` (columns of ``data``); a promptfoo
    suite is ``evaluate(promptfoo="promptfooconfig.yaml")`` (a path, or the suite as a dict).
    """
    from argparse import Namespace

    from IPython import get_ipython

    session = get_session()
    magics = get_ipython()._jupyter_aigc_magics
    args = magics.aigc_eval.parser.parse_args([])
    names = metrics if isinstance(metrics, (str, type(None))) else ",".join(metrics)
    values = {"data": None if data is None else "__aigc_eval_data__", "reference": reference, "metrics": names,
              **{k.replace("-", "_"): (str(v) if isinstance(v, (int, float)) else v) for k, v in options.items()}}
    unknown = set(values) - set(vars(args))
    if unknown:
        raise TypeError(f"evaluate() got unknown options: {', '.join(sorted(unknown))}")
    namespace = {**get_ipython().user_ns, "__aigc_eval_data__": data}
    evaluation = _run(lambda cancel: session.evaluate.run(Namespace(**{**vars(args), **values}), template,
                                                          namespace, cancel))
    return session.evaluate.dataframe(evaluation)


def finetune(name: str, data=None, model: str | None = None, examples: str = "", **options):
    """Fine-tune like %%aigc_finetune and return the result (``.name``, ``.folder``, ``.progress``).

    ``data`` is a list, DataFrame, Dataset or path; ``examples`` the cell-body text form instead;
    ``options`` are %%aigc_finetune's options by name, e.g. ``epochs=4, lora_r=8``.
    """
    from argparse import Namespace

    from IPython import get_ipython

    session = get_session()
    args = vars(get_ipython()._jupyter_aigc_magics.aigc_finetune.parser.parse_args([]))
    unknown = set(options) - set(args)
    if unknown:
        raise TypeError(f"finetune() got unknown options: {', '.join(sorted(unknown))}")
    namespace = {**get_ipython().user_ns, "__aigc_finetune_data__": data}
    values = {**args, **options, "name": name, "model": model,
              "data": None if data is None else "__aigc_finetune_data__"}
    return _run(lambda cancel: session.finetune.run(Namespace(**values), examples, namespace, cancel))


def train_image(kind: str, name: str, data="digits", **options):
    """Train an image-lab model like %aigc_train_image and return the result (``.name``, ``.folder``,
    ``.progress``, ``.info``); ``data`` is 'digits', a folder, an array [n, h, w], (images, labels) or a dict.

    ``options`` are %aigc_train_image's options by name, e.g. ``epochs=5, batch_size=32, conditional=True``.
    """
    from argparse import Namespace

    from IPython import get_ipython

    session = get_session()
    args = vars(get_ipython()._jupyter_aigc_magics.aigc_train_image.parser.parse_args([]))
    unknown = set(options) - set(args)
    if unknown:
        raise TypeError(f"train_image() got unknown options: {', '.join(sorted(unknown))}")
    named = isinstance(data, str)
    namespace = {**get_ipython().user_ns, "__aigc_train_image_data__": data}
    values = {**args, **options, "kind": kind, "name": name, "data": data if named else "__aigc_train_image_data__"}
    return _run(lambda cancel: session.image_lab.run(Namespace(**values), namespace, cancel), here=True)


def _run(work, here: bool = False):
    """The Python API runs its work as the magics do: a ``Job`` that Kernel → Interrupt ends (what was done is
    kept: stored answers, the adapter as trained so far), with a user's mistake as one line, not a traceback."""
    from .core.cancel import Job, SteppedJob
    from .core.errors import AigcError
    from .magics import usage_error

    try:
        return (SteppedJob if here else Job)(work).run()
    except AigcError as error:
        raise usage_error(error) from None


def _jupyter_labextension_paths() -> list[dict]:
    """Where the built JupyterLab extension lives (for `jupyter labextension develop`)."""
    return [{"src": "labextension", "dest": "jupyter-aigc"}]
