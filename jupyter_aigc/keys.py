"""API keys: resolved in a fixed order (explicit, set in the kernel, environment) and never shown."""

from __future__ import annotations

import os
import re

from .errors import AigcError

_kernel_keys: dict[str, str] = {}
ENV_VARS = {"openai": "OPENAI_API_KEY"}
NO_KEY_NEEDED = "no-key-needed"


def set_key(provider: str, key: str) -> None:
    """Remember ``key`` for ``provider`` in this kernel only (never written to disk)."""
    _kernel_keys[provider] = key.strip()


def forget_key(provider: str) -> None:
    _kernel_keys.pop(provider, None)


def resolve_key(provider: str, explicit_env: str | None = None, local_server: bool = False) -> str:
    """explicit (--key-env VAR) → `%aigc key` → environment; a local server may go without one."""
    if explicit_env:
        value = os.environ.get(explicit_env)
        if not value:
            raise AigcError(f"The environment variable {explicit_env} (from --key-env) is not set.",
                            f"Set it before starting Jupyter, or run `%env {explicit_env}=…` in a cell you do not save.")
        return value
    if _kernel_keys.get(provider):
        return _kernel_keys[provider]
    env_var = ENV_VARS.get(provider, f"{provider.upper()}_API_KEY")
    if os.environ.get(env_var):
        return os.environ[env_var]
    if local_server:
        return NO_KEY_NEEDED
    raise AigcError(
        f"No API key for {provider}.",
        f"Run `%aigc key {provider}` (it asks without echoing), or set {env_var} in the environment "
        "before starting Jupyter.",
    )


def known_keys() -> list[str]:
    keys = [k for k in _kernel_keys.values() if k]
    keys += [os.environ[v] for v in ENV_VARS.values() if os.environ.get(v)]
    return [k for k in keys if len(k) >= 8 and k != NO_KEY_NEEDED]


_KEY_PATTERN = re.compile(r"\b(sk-[A-Za-z0-9_\-]{8,})")


def redact(text: str) -> str:
    """``text`` with every known key, and anything shaped like an OpenAI key, replaced by a mask."""
    for key in known_keys():
        text = text.replace(key, mask(key))
    return _KEY_PATTERN.sub(lambda m: mask(m.group(1)), text)


def mask(key: str) -> str:
    return key[:3] + "…" if key.startswith("sk-") else "…"
