"""The data of an evaluation: rows from a variable or a file, and the template filled in from each row."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..core.errors import AigcError
from ..core.template import checked_text
from ..options import placeholder_pattern


def load_rows(source, namespace: dict) -> tuple[list[dict], str]:
    """Rows as dicts from a list of dicts, a DataFrame, a datasets.Dataset, or a .csv/.jsonl/.json path."""
    label = str(source)
    if isinstance(source, str) and source in namespace:
        label, source = source, namespace[source]
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        if not path.is_file():
            raise AigcError(f"--data '{source}' is neither a variable nor a file.",
                            "Give the name of a list of dicts, a DataFrame or a Dataset, or a .csv/.jsonl path.")
        source = _read_file(path)
    if hasattr(source, "to_dict") and hasattr(source, "columns"):  # pandas DataFrame
        if not source.columns.is_unique:
            raise AigcError(f"--data {label} has two columns of the same name.", "Rename one of them.")
        rows = source.to_dict("records")
    elif hasattr(source, "to_list") and hasattr(source, "column_names"):  # datasets.Dataset
        rows = source.to_list()
    elif isinstance(source, (list, tuple)) and all(isinstance(r, dict) for r in source):
        rows = [dict(r) for r in source]
    else:
        raise AigcError(f"--data {label} is a {type(source).__name__}, not a table.",
                        "Give a list of dicts, a pandas DataFrame, a datasets.Dataset, or a .csv/.jsonl path.")
    if not rows:
        raise AigcError(f"--data {label} has no rows.", "Give at least one example.")
    return [_named(row, label, index) for index, row in enumerate(rows)], label


def _named(row: dict, label: str, index: int) -> dict:
    """The row with its column names as text (a DataFrame's columns 0, 1 become "0", "1")."""
    named = {str(key): value for key, value in row.items()}
    if len(named) < len(row):
        raise AigcError(f"--data {label} row {index} has two columns named alike ({', '.join(map(repr, row))}).",
                        "Give each column a distinct name.")
    return named


def _read_file(path: Path) -> list[dict]:
    """A .csv (header row), .jsonl (an object a line) or .json file; a UTF-8 byte-order mark is skipped."""
    try:
        if path.suffix == ".csv":
            return _read_csv(path)
        if path.suffix == ".jsonl":
            return _read_jsonl(path)
        if path.suffix == ".json":
            return json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise AigcError(f"Could not read {path}: {exc}.", "Check the file's format.") from None
    raise AigcError(f"--data {path}: unknown file type '{path.suffix}'.", "Use a .csv, .jsonl or .json file.")


def _read_csv(path: Path) -> list[dict]:
    import csv

    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        twice = sorted({name for name in header if header.count(name) > 1})
        if twice:
            raise AigcError(f"{path}: the header names {', '.join(map(repr, twice))} more than once.",
                            "Give each column a distinct name.")
        rows = []
        try:
            for row in reader:
                extra, missing = row.get(None), [k for k, v in row.items() if v is None and k is not None]
                if extra or missing:
                    count = len(header) + len(extra or []) - len(missing)
                    raise AigcError(f"{path} line {reader.line_num} has {count} fields; the header has "
                                    f"{len(header)}.", "Put quotes around a field that holds a comma, or fix that line.")
                rows.append(row)
        except csv.Error as exc:
            raise AigcError(f"{path} line {reader.line_num}: {exc}.", "Check the file's format.") from None
        return rows


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise AigcError(f"{path} line {number} is not JSON ({getattr(exc, 'msg', exc)} at column "
                            f"{getattr(exc, 'colno', '?')}).", "Each line must be one JSON object.") from None
        if not isinstance(value, dict):
            raise AigcError(f"{path} line {number} is a JSON {type(value).__name__}, not an object.",
                            'Each line must be one JSON object, e.g. {"question": "...", "answer": "..."}.')
        rows.append(value)
    return rows


def columns_of(rows: list[dict]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def fill(template: str, row: dict, namespace: dict) -> str:
    """``{column}`` from the row (then from the notebook), ``{0}`` for a column named 0; ``{{x}}`` gives ``{x}``;
    other braces stay."""

    def replace_one(match) -> str:
        if match.group(1) is not None:
            return "{" + match.group(1) + "}"
        if match.group(4) is not None:
            return str(row[match.group(4)]) if match.group(4) in row else match.group(0)
        name, path = match.group(2), match.group(3)
        if name in row and not path:
            return str(row[name])
        if name in namespace:
            from ..core.template import interpolate

            return interpolate(match.group(0), namespace)
        return match.group(0)

    pattern = re.compile(placeholder_pattern().pattern + r"|\{(\d+)\}")
    return checked_text(pattern.sub(replace_one, template))


def check_template(template: str, columns: list[str], namespace: dict) -> None:
    for match in placeholder_pattern().finditer(template):
        name = match.group(2)
        if name is not None and name not in columns and name not in namespace:
            raise AigcError(f"The template uses {{{name}}}, which is not a column of the data.",
                            f"Columns: {', '.join(columns)}. Write {{{{{name}}}}} for a literal brace.")
