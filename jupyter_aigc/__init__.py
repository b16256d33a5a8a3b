"""jupyter-aigc: generative models in notebooks. `%load_ext jupyter_aigc` adds %%gpt and %aigc."""

__version__ = "0.1.0"

_KEPT = ("cache", "chat", "history", "aliases")


def load_ipython_extension(ipython) -> None:
    """Register the magics; a reload keeps the loaded models, the conversation, history and aliases."""
    from ._magics import AigcMagics
    from .session import AigcSession

    previous = getattr(ipython, "_jupyter_aigc_session", None)
    if previous is not None:
        unload_ipython_extension(ipython)
    session = AigcSession(ipython)
    if previous is not None:
        for name in _KEPT:
            setattr(session, name, getattr(previous, name))
        session.local.cache = session.cache
    ipython._jupyter_aigc_session = session
    ipython.configurables.append(session.config)
    ipython.register_magics(AigcMagics(ipython, session))


def unload_ipython_extension(ipython) -> None:
    """Remove the magics and the config object; the session stays for a later %load_ext."""
    session = getattr(ipython, "_jupyter_aigc_session", None)
    manager = ipython.magics_manager
    for kind, names in (("cell", ("gpt", "aigc_image", "aigc_attention")), ("line", ("aigc",))):
        for name in names:
            manager.magics[kind].pop(name, None)
    manager.registry.pop("AigcMagics", None)
    if session is not None and session.config in ipython.configurables:
        ipython.configurables.remove(session.config)


def session():
    """The AigcSession of the running IPython kernel (for the Python API and tests)."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None or getattr(shell, "_jupyter_aigc_session", None) is None:
        raise RuntimeError("Run `%load_ext jupyter_aigc` first.")
    return shell._jupyter_aigc_session


def attention_view(text: str, model: str | None = None, layers: str | None = None, heads: str | None = None):
    """An AttentionView of ``text`` (e.g. ``attention_view("The cat sat", layers="0-3")``); needs %load_ext."""
    return session().attention_view(text, model, layers, heads)
