"""Prompt interpolation ({var}) and chat memory across %%gpt cells."""

from __future__ import annotations

import re
from dataclasses import dataclass

_PLACEHOLDER = re.compile(
    r"\{\{([^{}]*)\}\}|\{([A-Za-z_][A-Za-z0-9_]*)((?:\.[A-Za-z_][A-Za-z0-9_]*|\[-?\d+\])*)\}"
)
_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(-?\d+)\]")


def interpolate(text: str, namespace: dict) -> str:
    """Replace ``{name}``, ``{name.attr}`` and ``{name[0]}`` for names defined in ``namespace``.

    Anything else in braces stays exactly as written (code, f-strings, nested JSON); ``{{text}}`` gives
    ``{text}`` without looking it up.
    """

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
        return str(value)

    return _PLACEHOLDER.sub(replace, text)


@dataclass
class Turn:
    """One cell's exchange: the user's prompt and the answer it got."""

    cell: str
    prompt: str
    answer: str
    model: str


class ChatSession:
    """The conversation formed by consecutive %%gpt cells; re-running a cell replaces its turn."""

    def __init__(self):
        self.turns: list[Turn] = []

    def messages(self, prompt: str, system: str = "", cell: str | None = None) -> list[dict]:
        """The messages for a new prompt: system, earlier turns (not this cell's), then the prompt."""
        messages = [{"role": "system", "content": system}] if system else []
        for turn in self.turns:
            if turn.cell == cell:
                break
            messages.append({"role": "user", "content": turn.prompt})
            messages.append({"role": "assistant", "content": turn.answer})
        messages.append({"role": "user", "content": prompt})
        return messages

    def record(self, cell: str, prompt: str, answer: str, model: str) -> None:
        """Add this cell's turn, or replace it (and drop the turns that followed it) if the cell ran before."""
        for position, turn in enumerate(self.turns):
            if turn.cell == cell:
                del self.turns[position:]
                break
        self.turns.append(Turn(cell, prompt, answer, model))

    def reset(self) -> None:
        self.turns.clear()
