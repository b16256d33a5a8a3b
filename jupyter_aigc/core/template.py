"""``{var}`` interpolation: the one rule for cell bodies and the magic line, on every kernel.

``{name}``, ``{name.attr}`` and ``{name[0]}`` insert a value from the notebook; ``{{text}}`` gives a literal
``{text}``; anything else in braces (code, f-strings, JSON, unknown names) stays exactly as written.
The magic line follows the same rule (``-m {folder}``); IPython's own ``$var`` expansion is off, so the
line means the same on every kernel.
"""

from __future__ import annotations

import re

from ..options import placeholder_pattern
from .errors import AigcError

_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(-?\d+)\]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def interpolate(text: str, namespace: dict) -> str:
    """Replace the placeholders of ``text`` whose names are defined in ``namespace``."""

    def replace(match: re.Match) -> str:
        token = match.group(0)
        if match.group(1) is not None:
            return "{" + match.group(1) + "}"
        name, path = match.group(2), match.group(3)
        if name not in namespace:
            return token
        value = namespace[name]
        try:
            for attr, index in _STEP.findall(path):
                value = getattr(value, attr) if attr else value[int(index)]
        except (AttributeError, IndexError, KeyError, TypeError):
            return token
        except Exception as exc:
            raise AigcError(f"{token} could not be read: {type(exc).__name__}: {exc}.",
                            f"Fix the value, or write {{{token}}} for the literal text.") from None
        try:
            return str(value)
        except Exception as exc:
            raise AigcError(f"{token} could not be turned into text: {type(exc).__name__}: {exc}.",
                            f"Insert something printable, or write {{{token}}} for the literal text.") from None

    return checked_text(placeholder_pattern().sub(replace, text))


def checked_text(text: str) -> str:
    """``text`` if it can be sent as UTF-8; a lone surrogate (from a bad paste or file) gets a clear error."""
    bad = _SURROGATE.search(text)
    if bad:
        line = text.count("\n", 0, bad.start()) + 1
        raise AigcError(f"The prompt has an invalid character (a lone surrogate, U+{ord(bad.group()):04X}) "
                        f"on line {line}.", "Delete or retype that character; it cannot be sent as UTF-8.")
    return text
