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
import numbers
import re
from pathlib import Path

from ..core.errors import AigcError
from ..core.keys import redact

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
    return [check_turns(e, f"Example {i + 1}") for i, e in enumerate(examples)]


def check_turns(turns: list, where: str) -> list[dict]:
    for turn in turns:
        if not isinstance(turn, dict) or not isinstance(turn.get("content"), str) or turn.get("role") not in (
                "system", "user", "assistant"):
            shown = f"the {type(turn).__name__} {_short(turn)}" if not isinstance(turn, dict) else _short(turn)
            raise AigcError(f"{where} has a turn that is not {{'role': …, 'content': '…'}}: {shown}.",
                            "Use roles system, user and assistant with text content.")
    if not turns or turns[-1]["role"] != "assistant" or not any(t["role"] == "user" for t in turns):
        raise AigcError(f"{where} has no question followed by an answer.",
                        "Each example needs a user turn and ends with the assistant's answer.")
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
    places = None
    if hasattr(source, "to_dict") and hasattr(source, "columns"):
        rows, places = source.to_dict("records"), [f"Row {i} of {label}" for i in source.index]
    elif hasattr(source, "to_list") and hasattr(source, "column_names"):
        rows = source.to_list()
    elif isinstance(source, (list, tuple)):
        rows = list(source)
    else:
        raise AigcError(f"--data {label} is a {type(source).__name__}.",
                        f"Give a list, a DataFrame, a datasets.Dataset or a .jsonl/.csv path with {EXPECTED}.")
    if not rows:
        raise AigcError(f"--data {label} is empty.", "Give at least one example.")
    places = places or [f"Example {i + 1} of {label}" for i in range(len(rows))]
    return [_example(row, place) for row, place in zip(rows, places)], label


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


def _example(row, where: str) -> list[dict]:
    """One example as chat turns; ``where`` names it in errors (a DataFrame row by its index)."""
    if isinstance(row, (list, tuple)):
        return check_turns(list(row), where)
    pair = isinstance(row, dict) and {"prompt", "completion"} <= set(row)
    if isinstance(row, dict) and "messages" in row and not (pair and _missing(row["messages"])):
        messages = row["messages"]
        if hasattr(messages, "tolist") and not isinstance(messages, str):
            messages = messages.tolist()  # a numpy array of turns (a DataFrame read from Parquet)
        if not isinstance(messages, (list, tuple)):
            raise AigcError(f"{where} has 'messages' as {_a(messages)} {_short(messages)}, not a list of turns.",
                            "Make each messages value a list of {'role': …, 'content': …} dicts "
                            "(json.loads it if it holds JSON text).")
        return check_turns(list(messages), where)
    if pair:
        for column in ("prompt", "completion"):
            value = row[column]
            if _missing(value):
                shown = "NaN" if isinstance(value, numbers.Real) else str(value)
            elif column == "completion" and not str(value).strip():
                shown = "empty"
            else:
                continue
            raise AigcError(f"{where} has no {column} (it is {shown}).",
                            "Fill it in, or drop such rows first (e.g. df.dropna()).")
        return [{"role": "user", "content": str(row["prompt"])}, {"role": "assistant", "content": str(row["completion"])}]
    found = ", ".join(map(str, row)) if isinstance(row, dict) else f"{_a(row)} {_short(row)}"
    raise AigcError(f"{where} has {found or 'nothing'}; expected {EXPECTED}.",
                    "Rename the columns, or build messages lists: [{'role': 'user', …}, {'role': 'assistant', …}].")


def _missing(value) -> bool:
    """None, NaN, pandas' NA or NaT: an empty cell of a table."""
    return value is None or (isinstance(value, numbers.Real) and value != value) or type(value).__name__ in (
        "NAType", "NaTType")


def _a(value) -> str:
    kind = type(value).__name__
    return f"{'an' if kind[:1] in 'aeiou' else 'a'} {kind}"


def _short(value) -> str:
    text = redact(repr(value))  # masked before it is cut
    return text if len(text) <= 40 else text[:39] + "…"


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
