"""jupyter-aigc: generative models in notebooks. `%load_ext jupyter_aigc` adds %%gpt and %aigc."""

import os as _os
import sys as _sys

__version__ = "0.1.0"

# Generation runs in worker threads. With libgomp's default (active) waiting, the OpenMP threads of
# each torch-calling thread spin between parallel regions and steal the cores generation needs:
# streaming ran at about half the speed of a plain model.generate. Passive waiting has to be chosen
# before torch loads OpenMP, so it is set here (an explicit OMP_WAIT_POLICY wins).
if "torch" not in _sys.modules:
    _os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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
    magics = AigcMagics(ipython, session)
    ipython.register_magics(magics)
    if type(ipython).__name__ == "ZMQInteractiveShell":
        session.status.start()
    if _kernel_serves_comms_while_awaiting(ipython):
        ipython._jupyter_aigc_gpt_async = magics.gpt_async
        ipython.input_transformers_post.append(_AwaitGpt())


def unload_ipython_extension(ipython) -> None:
    """Remove the magics and the config object; the session stays for a later %load_ext."""
    session = getattr(ipython, "_jupyter_aigc_session", None)
    manager = ipython.magics_manager
    for kind, names in (("cell", ("gpt", "aigc_image", "aigc_attention")), ("line", ("aigc",))):
        for name in names:
            manager.magics[kind].pop(name, None)
    manager.registry.pop("AigcMagics", None)
    ipython.input_transformers_post[:] = [t for t in ipython.input_transformers_post
                                          if type(t).__name__ != "_AwaitGpt"]
    if session is not None:
        session.status.stop()
        if session.config in ipython.configurables:
            ipython.configurables.remove(session.config)


def _kernel_serves_comms_while_awaiting(ipython) -> bool:
    """ipykernel ≥ 7.4 dispatches widget messages while a cell awaits; older kernels use jupyter-ui-poll."""
    if type(ipython).__name__ != "ZMQInteractiveShell":
        return False
    try:
        import ipykernel
    except ImportError:
        return False
    return tuple(int(p) for p in ipykernel.__version__.split(".")[:2]) >= (7, 4)


class _AwaitGpt:
    """Input transformer: a %%gpt cell awaits the magic, so the kernel can deliver Stop clicks meanwhile."""

    PREFIX = "get_ipython().run_cell_magic('gpt', "

    def __call__(self, lines: list[str]) -> list[str]:
        if lines and lines[0].startswith(self.PREFIX):
            call = "".join(lines)[len(self.PREFIX):]
            return ["await get_ipython()._jupyter_aigc_gpt_async(" + call]
        return lines


def get_session():
    """The AigcSession of the running IPython kernel (for the Python API and tests)."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None or getattr(shell, "_jupyter_aigc_session", None) is None:
        raise RuntimeError("Run `%load_ext jupyter_aigc` first.")
    return shell._jupyter_aigc_session


def attention_view(text: str, model: str | None = None, layers: str | None = None, heads: str | None = None):
    """An AttentionView of ``text`` (e.g. ``attention_view("The cat sat", layers="0-3")``); needs %load_ext."""
    return get_session().attention_view(text, model, layers, heads)


def _jupyter_labextension_paths() -> list[dict]:
    """Where the built JupyterLab extension lives (for `jupyter labextension develop`)."""
    return [{"src": "labextension", "dest": "jupyter-aigc"}]
