"""Fine-tuning data: any source a notebook has, as chat examples, tokenized with the loss on the answers only.

Sources: a list of ``{"prompt", "completion"}`` dicts, a list of chat ``messages`` lists (or of dicts with a
``messages`` key), a pandas DataFrame or a ``datasets.Dataset`` with those columns, a ``.jsonl``/``.csv``
path, or the cell body in this text form (blank lines between examples; an answer may span lines)::

    Q: What is the capital of Zubrowka?
    A: Lutz, on the river Zubr.

    Q: Who founded Lutz?
    A: Queen Ilse, in 1622.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from ..core.errors import AigcError

EXPECTED = "'prompt' and 'completion' columns, or a 'messages' column of chat turns"
_TURN = re.compile(r"^(Q|A|User|Assistant|Question|Answer)\s*:\s?(.*)$", re.IGNORECASE)
_ROLES = {"q": "user", "user": "user", "question": "user", "a": "assistant", "assistant": "assistant",
          "answer": "assistant"}


def parse_text(body: str) -> list[list[dict]]:
    """Examples from the cell body's ``Q:``/``A:`` text form (``User:``/``Assistant:`` work too)."""
    examples, turns = [], []
    for line in body.splitlines() + [""]:
        match = _TURN.match(line.strip())
        if match:
            turns.append({"role": _ROLES[match.group(1).lower()], "content": match.group(2)})
        elif line.strip() and turns:
            turns[-1]["content"] += "\n" + line.strip()
        elif line.strip():
            raise AigcError(f"Cannot read the line {line.strip()[:60]!r} of the cell's examples.",
                            "Write each example as 'Q: question' then 'A: answer', with a blank line between examples.")
        if not line.strip() and turns:
            examples.append(turns)
            turns = []
    return [check_turns(e, i) for i, e in enumerate(examples)]


def check_turns(turns: list[dict], index: int) -> list[dict]:
    if not turns or turns[-1].get("role") != "assistant" or not any(t.get("role") == "user" for t in turns):
        raise AigcError(f"Example {index + 1} has no question followed by an answer.",
                        "Each example needs a user turn and ends with the assistant's answer.")
    for turn in turns:
        if not isinstance(turn, dict) or not isinstance(turn.get("content"), str) or turn.get("role") not in (
                "system", "user", "assistant"):
            raise AigcError(f"Example {index + 1} has a turn that is not {{'role': …, 'content': '…'}}.",
                            "Use roles system, user and assistant with text content.")
    return turns


def load_examples(source, namespace: dict, body: str = "") -> tuple[list[list[dict]], str]:
    """Chat examples (lists of turns, each ending with the answer) and a label for messages."""
    if source is None:
        if not body.strip():
            raise AigcError("There are no examples.", "Pass --data (a variable or a .jsonl/.csv path), or type "
                            "'Q: …' / 'A: …' examples in the cell body.")
        return parse_text(body), "the cell"
    label = str(source)
    if isinstance(source, str) and source in namespace:
        source = namespace[source]
    elif isinstance(source, str):
        source = _read(Path(source).expanduser())
    if hasattr(source, "to_dict") and hasattr(source, "columns"):
        rows = source.to_dict("records")
    elif hasattr(source, "to_list") and hasattr(source, "column_names"):
        rows = source.to_list()
    elif isinstance(source, (list, tuple)):
        rows = list(source)
    else:
        raise AigcError(f"--data {label} is a {type(source).__name__}.",
                        f"Give a list, a DataFrame, a datasets.Dataset or a .jsonl/.csv path with {EXPECTED}.")
    if not rows:
        raise AigcError(f"--data {label} is empty.", "Give at least one example.")
    return [_example(row, i, label) for i, row in enumerate(rows)], label


def _read(path: Path) -> list:
    if not path.is_file():
        raise AigcError(f"--data '{path}' is neither a variable nor a file.", "Check the name or the path.")
    try:
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if path.suffix == ".csv":
            import csv

            with open(path, newline="", encoding="utf-8") as f:
                return list(csv.DictReader(f))
    except (OSError, ValueError) as exc:
        raise AigcError(f"Could not read {path}: {exc}.", "Check the file's format.") from None
    raise AigcError(f"--data {path}: unknown file type '{path.suffix}'.", "Use a .jsonl or .csv file.")


def _example(row, index: int, label: str) -> list[dict]:
    if isinstance(row, (list, tuple)):
        return check_turns(list(row), index)
    if isinstance(row, dict) and isinstance(row.get("messages"), (list, tuple)):
        return check_turns(list(row["messages"]), index)
    if isinstance(row, dict) and {"prompt", "completion"} <= set(row):
        return [{"role": "user", "content": str(row["prompt"])}, {"role": "assistant", "content": str(row["completion"])}]
    found = ", ".join(map(str, row)) if isinstance(row, dict) else type(row).__name__
    raise AigcError(f"Example {index + 1} of {label} has {found or 'nothing'}; expected {EXPECTED}.",
                    "Rename the columns, or build messages lists: [{'role': 'user', …}, {'role': 'assistant', …}].")


def data_hash(examples: list[list[dict]]) -> str:
    return hashlib.sha256(json.dumps(examples, sort_keys=True).encode()).hexdigest()


def tokenize(examples: list[list[dict]], tokenizer, max_length: int) -> tuple[list[dict], int]:
    """input_ids and labels for each example (labels −100 except on the last answer's tokens); how many
    examples were cut to ``max_length``."""
    rows, cut = [], 0
    for turns in examples:
        if tokenizer.chat_template:
            prefix = tokenizer.apply_chat_template(turns[:-1], add_generation_prompt=True, tokenize=True,
                                                   return_dict=True)["input_ids"]
            full = tokenizer.apply_chat_template(turns, tokenize=True, return_dict=True)["input_ids"]
            if full[:len(prefix)] != prefix:
                full = prefix + tokenizer(turns[-1]["content"], add_special_tokens=False)["input_ids"] + \
                    [tokenizer.eos_token_id]
        else:
            prefix = tokenizer("\n\n".join(t["content"] for t in turns[:-1]) + "\n\n")["input_ids"]
            full = prefix + tokenizer(turns[-1]["content"], add_special_tokens=False)["input_ids"] + \
                [tokenizer.eos_token_id]
        labels = [-100] * len(prefix) + full[len(prefix):]
        if len(full) > max_length:
            cut += 1
            full, labels = full[:max_length], labels[:max_length]
        if all(label == -100 for label in labels):
            continue  # the answer was cut off entirely: nothing to learn from
        rows.append({"input_ids": full, "labels": labels})
    return rows, cut
