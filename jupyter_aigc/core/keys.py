"""API keys: resolved in a fixed order (explicit, set in the kernel, environment) and never shown.

Every key the kernel resolves for a request is remembered (in memory only), so ``redact`` masks it in
outputs, errors, history rows and logs, whatever its source or shape. Secrets in URLs (user:password@,
``?key=``/``token=`` parameters) are masked too.
"""

from __future__ import annotations

import os
import re

from .errors import AigcError

_kernel_keys: dict[str, str] = {}
_used_keys: set[str] = set()
ENV_VARS = {"openai": "OPENAI_API_KEY", "class": "JUPYTER_AIGC_CLASS_TOKEN"}
# a class server on a JupyterHub takes the user's own Hub token, which the Hub gives every user's server
FALLBACK_ENV_VARS = {"class": "JUPYTERHUB_API_TOKEN"}
NO_KEY_NEEDED = "no-key-needed"
MIN_SECRET = 6


def set_key(provider: str, key: str) -> None:
    """Remember ``key`` for ``provider`` in this kernel only (never written to disk)."""
    _kernel_keys[provider] = key.strip()
    remember(key.strip())


def forget_key(provider: str) -> None:
    _kernel_keys.pop(provider, None)


def remember(key: str) -> str:
    """Mark ``key`` as a secret that ``redact`` must mask from now on; returns it without the whitespace
    around it (a key file or `export` often ends in a newline, which no server accepts)."""
    key = (key or "").strip()
    if key and len(key) >= MIN_SECRET and key != NO_KEY_NEEDED:
        _used_keys.add(key)
    return key


def remember_url_secret(url: str) -> None:
    """Treat the password in ``scheme://user:password@host`` as a key (it is used, never shown), and the
    HTTP Basic credentials it becomes too."""
    import base64

    match = _URL_USERINFO.search(url or "")
    if match:
        remember(match["secret"])
        remember(base64.b64encode(f"{match['user']}:{match['secret']}".encode()).decode())


def resolve_key(provider: str, explicit_env: str | None = None, local_server: bool = False) -> str:
    """explicit (--key-env VAR) → `%aigc key` → environment; a local server may go without one."""
    if explicit_env:
        value = (os.environ.get(explicit_env) or "").strip()
        if not value:
            raise AigcError(f"The environment variable {explicit_env} (from --key-env) is not set.",
                            f"Set it before starting Jupyter, or run `%env {explicit_env}=…` in a cell you do not save.")
        return remember(value)
    if _kernel_keys.get(provider):
        return _kernel_keys[provider]
    env_var = ENV_VARS.get(provider, f"{provider.upper()}_API_KEY")
    for name in (env_var, FALLBACK_ENV_VARS.get(provider)):
        if name and os.environ.get(name, "").strip():
            return remember(os.environ[name])
    if provider == "class":
        raise AigcError("No token for the class server.",
                        "Run `%aigc connect URL --token T` with the token your teacher gave you.")
    if local_server:
        return NO_KEY_NEEDED
    raise AigcError(
        f"No API key for {provider}.",
        f"Run `%aigc key {provider}` (it asks without echoing), or set {env_var} in the environment "
        "before starting Jupyter.",
    )


def known_keys() -> list[str]:
    keys = set(_used_keys) | {k for k in _kernel_keys.values() if k}
    keys |= {os.environ[v].strip() for v in ENV_VARS.values() if os.environ.get(v)}
    return sorted((k for k in keys if len(k) >= MIN_SECRET and k != NO_KEY_NEEDED), key=len, reverse=True)


def secrets_known() -> bool:
    """Whether this kernel has used (or holds) a key or URL password that outputs must not show."""
    return bool(known_keys())


_KEY_PATTERN = re.compile(r"\b(sk-[A-Za-z0-9_\-]{8,})")
_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^/@\s:]*):(?P<secret>[^/@\s]+)@")
_URL_PARAM = re.compile(r"(?P<name>[?&](?:api[-_]?key|key|token|access[-_]token|secret|password|sig)=)[^&#\s]+",
                        re.IGNORECASE)
_BEARER = re.compile(r"(?P<name>(?:Bearer|Basic)\s+)[A-Za-z0-9._\-~+/=]{8,}")


def redact(text: str) -> str:
    """``text`` with every key used in this kernel, key-shaped strings and URL secrets masked."""
    if not isinstance(text, str):
        text = str(text)
    for key in known_keys():
        text = text.replace(key, mask(key))
    text = _KEY_PATTERN.sub(lambda m: mask(m.group(1)), text)
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:…@", text)
    text = _URL_PARAM.sub(lambda m: m["name"] + "…", text)
    return _BEARER.sub(lambda m: m["name"] + "…", text)


def secret_spans(text: str) -> list[tuple[int, int]]:
    """Where ``redact`` would mask something in ``text``: (start, end) pairs."""
    spans = []
    for key in known_keys():
        start = text.find(key)
        while start >= 0:
            spans.append((start, start + len(key)))
            start = text.find(key, start + 1)
    for pattern, group in ((_KEY_PATTERN, 1), (_URL_USERINFO, "secret"), (_URL_PARAM, 0), (_BEARER, 0)):
        spans += [match.span(group) for match in pattern.finditer(text)]
    return spans


def has_secret(text: str) -> bool:
    """Whether ``redact`` would change ``text`` (one pass per pattern, no copy)."""
    return any(key in text for key in known_keys()) or any(
        pattern.search(text) for pattern in (_KEY_PATTERN, _URL_USERINFO, _URL_PARAM, _BEARER))


def mask_tokens(texts: list[str]) -> list[str]:
    """Token strings with every token that carries part of a secret of the joined text masked."""
    joined = "".join(texts)
    spans = secret_spans(joined)
    if not spans:
        return list(texts)
    masked, position = [], 0
    for text in texts:
        end = position + len(text)
        hit = any(start < end and position < stop for start, stop in spans)
        masked.append("…" if hit and text.strip() else redact(text))
        position = end
    return masked


def mask(key: str) -> str:
    return key[:3] + "…" if key.startswith("sk-") else "…"
