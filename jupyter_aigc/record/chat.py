"""Chat memory across %%gpt cells: consecutive cells form one conversation."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Turn:
    """One cell's exchange; ``finish_reason`` other than "stop" marks an answer that was cut off."""

    cell: str
    prompt: str
    answer: str
    model: str
    finish_reason: str = "stop"

    @property
    def cut_off(self) -> bool:
        return self.finish_reason != "stop"


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

    def record(self, cell: str, prompt: str, answer: str, model: str, finish_reason: str = "stop") -> None:
        """Add this cell's turn, or replace it (and drop the turns that followed it) if the cell ran before."""
        for position, turn in enumerate(self.turns):
            if turn.cell == cell:
                del self.turns[position:]
                break
        self.turns.append(Turn(cell, prompt, answer, model, finish_reason))

    def reset(self) -> None:
        self.turns.clear()
