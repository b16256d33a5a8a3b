"""Magic names, options and setting ranges, all read from spec.json (also read by the JupyterLab extension)."""

from __future__ import annotations

import json
import keyword
import re
import shlex
from functools import lru_cache
from importlib import resources

from .core.errors import AigcError


@lru_cache(maxsize=1)
def spec() -> dict:
    return json.loads(resources.files("jupyter_aigc").joinpath("spec.json").read_text())


def magic_names(kind: str) -> list[str]:
    """The names of the line or cell magics this package registers (a "line_cell" magic is both)."""
    return [name for name, magic in spec()["magics"].items() if kind in magic["kind"].split("_")]


def placeholder_pattern() -> re.Pattern:
    """``{name}``, ``{name.attr}``, ``{name[0]}`` and the ``{{literal}}`` escape, as in the extension."""
    return re.compile(spec()["placeholder"])


def _expanded(options: list[dict]) -> list[dict]:
    out = []
    for option in options:
        out += _expanded(spec()["groups"][option["group"]]) if "group" in option else [option]
    return out


def magic_options(magic: str) -> list[dict]:
    return _expanded(spec()["magics"][magic]["options"])


def declare(magic: str):
    """A decorator adding the magic's options (from spec.json) with IPython's ``@argument``."""
    from IPython.core.magic_arguments import argument

    def decorate(func):
        for option in reversed(magic_options(magic)):
            kwargs = {"help": option["help"]}
            if option.get("switch"):
                kwargs["action"] = "store_true"
            elif option.get("append"):
                kwargs.update(action="append", default=[])
            if option.get("type") in ("int", "float"):
                kwargs["type"] = int if option["type"] == "int" else float
            if "choices" in option:
                kwargs["choices"] = option["choices"]
            if "default" in option:
                kwargs["default"] = option["default"]
            func = argument(*option["flags"], **kwargs)(func)
        return func

    return decorate


def parse_argstring(magic_func, line: str):
    """Parse a magic's options the way a shell would: quotes group words and are removed."""
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise AigcError(f"Cannot read the options: {exc}.", "Close every quote you open.") from None
    from IPython.core.error import UsageError

    try:
        args = magic_func.parser.parse_args(words)
    except UsageError as error:  # argparse's message quotes what was typed: shown cleaned, like every error
        from .views.outside import plain

        raise UsageError(plain(str(error))) from None
    output = getattr(args, "output", None)
    if output is not None and (not output.isidentifier() or keyword.iskeyword(output)):
        raise AigcError(f"-o {output!r} is not a Python variable name.",
                        "Use letters, digits and _ (not first a digit), e.g. -o answer.")
    return args


def check(setting: str, value, flag: str | None = None):
    """``value`` converted to the setting's type and checked against its range (the one rule for every path)."""
    rule = spec()["settings"][setting]
    flag = flag or "--" + setting.replace("_", "-")
    kind = int if rule["type"] == "int" else float
    try:
        if isinstance(value, bool) or (kind is int and isinstance(value, float) and not value.is_integer()):
            raise ValueError
        number = kind(str(value).strip()) if isinstance(value, str) else kind(value)
    except (TypeError, ValueError):
        raise AigcError(f"{flag} got {value!r}, which is not {'an integer' if kind is int else 'a number'}.",
                        f"Give a number from {rule['min']} to {rule['max']}.") from None
    if not rule["min"] <= number <= rule["max"]:
        raise AigcError(f"{flag} {number} is out of range.", f"Use a value from {rule['min']} to {rule['max']}.")
    return number


def check_list(setting: str, text, flag: str | None = None) -> list:
    """'0,0.7' → [0.0, 0.7], each checked; None → [None] (the configured default)."""
    if text is None:
        return [None]
    parts = [p.strip() for p in str(text).split(",")]
    if not all(parts):
        flag = flag or "--" + setting.replace("_", "-")
        raise AigcError(f"{flag} '{text}' has an empty item.", f"Give a comma list like {flag} 0,0.7.")
    return [check(setting, part, flag) for part in parts]


_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|[ntr\\\"'0])")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "0": "\0"}


def stop_sequences(values: list[str]) -> list[str]:
    """``--stop`` values with ``\\n``, ``\\t``, ``\\r``, ``\\\\`` and ``\\uXXXX`` decoded; empty ones refused."""
    decoded = []
    for value in values:
        text = _ESCAPE.sub(lambda m: chr(int(m.group(1)[1:], 16)) if m.group(1)[0] == "u"
                           else _ESCAPES[m.group(1)], value)
        if not text:
            raise AigcError("--stop got an empty string, which would end every answer at once.",
                            'Give the text to stop at, e.g. --stop "\\n\\n".')
        decoded.append(text)
    return decoded


def controls() -> list[dict]:
    """The widget's sampling controls, with the same ranges as the options."""
    settings = spec()["settings"]
    return [{"key": key, **settings[key]} for key in ("temperature", "top_p", "max_tokens", "seed")]
