"""A promptfoo suite (promptfooconfig.yaml, or a dict) read into prompts, provider specs and tests.

Read: ``prompts`` (text, ``{raw, label}``, or ``file://`` .txt/.md files split at ``---`` lines), ``providers``
(ids and configs; ``promptfoo.py`` turns them into variants), ``defaultTest`` and ``tests`` (a list, or a
``file://`` YAML/JSON list) with ``vars``, ``assert``, ``description``, ``threshold`` and ``options``. Vars given
as lists expand into one test per value, as promptfoo expands them; ``file://`` vars are read from their files.
Templates are nunjucks in promptfoo; here jinja2's sandboxed environment renders them, with nunjucks' ways of
showing values (true, 4 rather than 4.0, '' for a missing var) and its ``dump``/``load`` filters. Paths are
relative to the config file (to the working directory for a dict).
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ..core.errors import AigcError
from ..core.keys import redact
from .assertions import TYPES, items_of, schema_of, split_type, truthy
from .jstext import js_json, js_string, json_parse

SUITE_KEYS = {"description", "prompts", "providers", "targets", "tests", "defaultTest", "evaluateOptions",
              "sharing", "outputPath", "writeLatestResults", "commandLineOptions", "tags", "metadata"}
TEST_KEYS = {"vars", "assert", "description", "threshold", "options", "metadata"}
OPTION_KEYS = {"provider", "rubricPrompt", "disableDefaultAsserts", "disableVarExpansion", "prefix", "suffix",
               "runSerially"}
ASSERT_KEYS = {"type", "value", "threshold", "weight", "metric", "provider", "config"}
SUPPORTED = ", ".join(TYPES) + ", and the not- form of each"
TEMPLATE_FIX = "promptfoo templates are nunjucks: {{ var }}, {% if x %}…{% endif %}."


@dataclass
class Check:
    """One assertion as configured: ``kind`` as written (not-contains), its base type and whether inverted."""

    kind: str
    base: str
    inverse: bool
    value: object = ...  # ... when the config gives none
    threshold: float | None = None
    weight: float = 1.0
    metric: str | None = None
    grader: object = None  # llm-rubric: the assertion's own grading provider
    config: dict | None = None


@dataclass
class Test:
    vars: dict
    shown: dict  # the vars as the config writes them (the grid's fields)
    description: str | None
    checks: list[Check]
    threshold: float | None
    options: dict = field(default_factory=dict)


@dataclass
class Prompt:
    raw: str
    label: str


@dataclass
class Suite:
    config: dict
    base: Path
    label: str
    prompts: list[Prompt]
    providers: list
    tests: list[Test]


def _nunjucks_text(value) -> str:
    """How nunjucks shows a value in {{ }}: '' for null and missing, true/false, 4 for 4.0, 'a,b' for a list."""
    from jinja2 import Undefined

    if value is None or isinstance(value, Undefined):
        return ""
    return value if isinstance(value, str) else js_string(value)


@lru_cache(maxsize=1)
def _environment():
    from jinja2 import ChainableUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(autoescape=False, keep_trailing_newline=True, undefined=ChainableUndefined,
                                        finalize=_nunjucks_text)
    env.filters.update(dump=lambda value, indent=None: js_json(value) if indent is None else
                       __import__("json").dumps(value, indent=indent, ensure_ascii=False), load=json_parse)
    return env


@lru_cache(maxsize=512)
def _template(text: str):
    if re.search(r"{%[^%]*$|{{[^}]*$|{#[^#]*$", text, re.MULTILINE) and not (
            re.search(r"{%\s*raw\s*%}", text) and re.search(r"{%\s*endraw\s*%}", text)):
        text = "{% raw %}" + text + "{% endraw %}"  # a lone {{ is text, as promptfoo's autoWrapRawIfPartialNunjucks
    return _environment().from_string(text)


def render(text: str, context: dict, where: str) -> str:
    """A nunjucks template filled in (jinja2, sandboxed); a broken template is one line naming ``where``."""
    from jinja2 import TemplateError

    try:
        return _template(text).render({str(k): v for k, v in context.items()})
    except TemplateError as exc:
        line = f" (line {exc.lineno})" if getattr(exc, "lineno", None) else ""
        raise AigcError(f"{where}: the template cannot be rendered{line}: {exc.message or type(exc).__name__}.",
                        TEMPLATE_FIX) from None


def read_yaml(path: Path, what: str):
    import yaml

    if not path.is_file():
        raise AigcError(f"{what}: no file at {path}.", "Check the path (relative to the suite's folder).")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise AigcError(f"{path}{where} is not valid YAML: {problem}.", "Fix the YAML at that line.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AigcError(f"Could not read {path}: {exc}.", "Check the file.") from None


def load(source, namespace: dict, body: str) -> Suite:
    """The suite named by ``--promptfoo``: a variable holding a dict, or a path (a folder: its
    promptfooconfig.yaml); the Python API may pass the dict itself. A cell body is the prompt of a suite that has
    no ``prompts``."""
    if isinstance(source, dict) or source in namespace:
        config, base, label = (source, Path.cwd(), "dict") if isinstance(source, dict) else \
            (namespace[source], Path.cwd(), source)
    else:
        path = Path(source).expanduser()
        if path.is_dir():
            path = path / "promptfooconfig.yaml"
        if not path.is_file():
            raise AigcError(f"--promptfoo '{source}' is neither a variable nor a file.",
                            "Give the path of a promptfooconfig.yaml, or the name of a variable holding the suite "
                            "as a dict.")
        config, base, label = read_yaml(path, "--promptfoo"), path.resolve().parent, str(path)
    if not isinstance(config, dict):
        raise AigcError(f"--promptfoo {label} is a {type(config).__name__}, not a suite.",
                        "A suite is a mapping with prompts, providers and tests.")
    unknown = sorted(set(map(str, config)) - SUITE_KEYS)
    if unknown:
        raise AigcError(f"The suite's '{unknown[0]}' is not supported here.",
                        f"Supported: {', '.join(sorted(SUITE_KEYS))}.")
    prompts = _prompts(config.get("prompts"), body, base)
    providers = config.get("providers", config.get("targets")) or []
    providers = providers if isinstance(providers, list) else [providers]
    return Suite(config, base, label, prompts, providers, _tests(config, base))


def _prompts(given, body: str, base: Path) -> list[Prompt]:
    if given and body.strip():
        raise AigcError("The suite has prompts and the cell has a prompt too.",
                        "Leave the cell body empty, or take the prompts out of the suite.")
    if not given:
        if not body.strip():
            raise AigcError("The suite has no prompts and the cell has none.",
                            "Add prompts to the suite, or write the prompt below the first line: {{ var }} per var.")
        return [Prompt(body.strip(), "prompt")]
    prompts = []
    for number, item in enumerate(given if isinstance(given, list) else [given]):
        label = None
        if isinstance(item, dict):
            label, item = item.get("label"), item.get("raw", item.get("id"))
        if not isinstance(item, str) or not item:
            raise AigcError(f"Prompt {number + 1} of the suite is not text.", "Give each prompt as text, or "
                            "{raw: TEXT, label: NAME}, or file://prompts.txt.")
        if item.startswith("file://"):
            path = base / item[7:]
            if path.suffix not in (".txt", ".md") or not path.is_file():
                raise AigcError(f"Prompt {number + 1}: {item} is not a .txt or .md file.",
                                "Give prompts in text files, one after another separated by lines of ---.")
            parts, part = [], []
            for line in path.read_text(encoding="utf-8-sig").splitlines() + ["---"]:
                if line.strip() == "---":
                    parts += ["\n".join(part).strip()] if "\n".join(part).strip() else []
                    part = []
                else:
                    part.append(line)
            prompts += [Prompt(text, f"{label or path.name}: {text}") for text in parts]
            continue
        if item.lstrip().startswith("- role:") or _is_json(item):
            raise AigcError(f"Prompt {number + 1} is in chat format (a list of messages).",
                            "Chat-format prompts are not supported here; write the prompt as text.")
        prompts.append(Prompt(item, label or item))
    return prompts


def _is_json(text: str) -> bool:
    try:
        json_parse(text)
    except ValueError:
        return False
    return True


def _mapping(value, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise AigcError(f"{what} is a {type(value).__name__}, not a mapping.", "Write it as key: value lines.")
    return value


def _tests(config: dict, base: Path) -> list[Test]:
    default = _mapping(config.get("defaultTest"), "defaultTest")
    tests = config.get("tests") or [{}]
    if isinstance(tests, str):
        path = base / tests.removeprefix("file://")
        if path.suffix not in (".yaml", ".yml", ".json"):
            raise AigcError(f"tests: {tests} is not a YAML or JSON file.", "Give the tests as a list, or a "
                            "file://tests.yaml holding the list (CSV test files are not supported).")
        tests = read_yaml(path, "tests")
    if not isinstance(tests, list):
        raise AigcError("The suite's tests are not a list.", "Write tests as a list of {vars, assert}.")
    out = []
    for number, test in enumerate(tests):
        where = f"Test {number + 1}"
        test = _mapping(test, where)
        unknown = sorted(set(map(str, test)) - TEST_KEYS)
        if unknown:
            raise AigcError(f"{where}: '{unknown[0]}' is not supported here.",
                            f"Supported: {', '.join(sorted(TEST_KEYS))}.")
        options = {**_mapping(default.get("options"), "defaultTest.options"), **_mapping(test.get("options"), where)}
        extra = sorted(set(map(str, options)) - OPTION_KEYS)
        if extra:
            raise AigcError(f"{where}: the option '{extra[0]}' is not supported here.",
                            f"Supported: {', '.join(sorted(OPTION_KEYS))}.")
        asserts = ([] if options.get("disableDefaultAsserts") else list(default.get("assert") or [])) + \
            list(test.get("assert") or [])
        checks = [_check(item, f"{where}, assertion {i + 1}") for i, item in enumerate(asserts)]
        threshold = test.get("threshold", default.get("threshold"))
        threshold = None if threshold is None else _number(threshold, f"{where}: threshold")
        given = {**_mapping(default.get("vars"), "defaultTest.vars"), **_mapping(test.get("vars"), f"{where}: vars")}
        for combination in _combinations(given, options.get("disableVarExpansion")):
            loaded = {str(k): _var(v, base, f"{where}: var '{k}'") for k, v in combination.items()}
            out.append(Test(loaded, {str(k): v for k, v in combination.items()}, test.get("description"), checks,
                            threshold, options))
    return out


def _combinations(given: dict, disabled) -> list[dict]:
    """promptfoo's generateVarCombinations: a var holding a list of texts makes one test per text."""
    if disabled:
        return [given]
    values = [v if isinstance(v, list) and v and isinstance(v[0], str) else [v] for v in given.values()]
    return [dict(zip(given, combo)) for combo in itertools.product(*values)]


def _var(value, base: Path, where: str):
    """A var as the prompt sees it: a file:// text file read (YAML as JSON text), one final newline dropped."""
    if isinstance(value, str) and value.startswith("file://"):
        path = base / value[7:]
        if any(c in value for c in "*?[") or path.suffix in (".py", ".js", ".ts", ".pdf", ".png", ".jpg", ".jpeg"):
            raise AigcError(f"{where}: {value} is not supported here.",
                            "Give file:// vars as single text or YAML files.")
        if not path.is_file():
            raise AigcError(f"{where}: no file at {path}.", "Check the path (relative to the suite's folder).")
        value = js_json(read_yaml(path, where)) if path.suffix in (".yaml", ".yml") else \
            path.read_text(encoding="utf-8-sig").strip()
    return value[:-1] if isinstance(value, str) and value.endswith("\n") else value


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AigcError(f"{where} is {value!r}, not a number.", "Give a number.")
    return float(value)


def _check(item, where: str) -> Check:
    if isinstance(item, dict) and item.get("type") in ("assert-set", "select-best", "max-score"):
        raise AigcError(f"{where}: the assertion type '{item['type']}' is not supported.", f"Supported: {SUPPORTED}.")
    if not isinstance(item, dict) or not isinstance(item.get("type"), str):
        raise AigcError(f"{where} has no type.", "Write each assertion as {type: contains, value: ...}.")
    base, inverse = split_type(item["type"])
    if base not in TYPES:
        raise AigcError(f"{where}: the assertion type '{item['type']}' is not supported.", f"Supported: {SUPPORTED}.")
    unknown = sorted(set(map(str, item)) - ASSERT_KEYS)
    if unknown:
        raise AigcError(f"{where} ({item['type']}): '{unknown[0]}' is not supported here.",
                        f"Supported: {', '.join(sorted(ASSERT_KEYS))}.")
    threshold = item.get("threshold")
    weight = _number(item.get("weight", 1), f"{where}: weight")
    return Check(item["type"], base, inverse, item.get("value", ...),
                 None if threshold is None else _number(threshold, f"{where}: threshold"), weight,
                 None if item.get("metric") is None else str(item["metric"]), item.get("provider"), item.get("config"))


def rendered_value(check: Check, vars_: dict, base: Path, where: str):
    """The assertion's value for one test: text rendered with its vars, file:// references read (.json, .yaml
    and .txt; a .py file is the python assertion's function), checked against the type."""
    value = check.value

    def one(item):
        if isinstance(item, str) and item.startswith("file://"):
            if check.base == "python":
                return item
            path = base / item[7:]
            if path.suffix not in (".json", ".yaml", ".yml", ".txt"):
                raise AigcError(f"{where}: {item} is not a .json, .yaml or .txt file.",
                                "Give values from files of those kinds (file://*.py goes with python assertions).")
            return read_yaml(path, where) if path.suffix != ".txt" else path.read_text(encoding="utf-8-sig").strip()
        return render(item, vars_, where) if isinstance(item, str) else item

    if value is ... and check.base != "equals":
        value = None
    value = [one(item) for item in value] if isinstance(value, list) else value if value is ... else one(value)
    if check.base == "python" and not (isinstance(value, str) and value or callable(value)):
        raise AigcError(f"{where} (python) needs a value: code, file://check.py[:function], or a notebook function.",
                        "e.g. value: len(output) < 80")
    if check.base == "llm-rubric" and not isinstance(value, (str, dict)):
        raise AigcError(f"{where} (llm-rubric) needs the rubric as its value.", "e.g. value: Is polite and brief.")
    problem = check_value(check.base, value, check.threshold)
    if problem:
        raise AigcError(f"{where}: {check.kind} {problem}.", "Fix that assertion's value (or threshold).")
    return value


def shown_value(value) -> str:
    """A short text form of an assertion's value for the grid."""
    if value is ... or value is None:
        return ""
    if callable(value):
        return f"{getattr(value, '__name__', 'function')}()"
    text = value if isinstance(value, str) else js_json(value) if isinstance(value, dict) else \
        ", ".join(js_string(v) for v in value) if isinstance(value, list) else js_string(value)
    text = redact(text)  # masked before it is cut
    return text if len(text) <= 120 else text[:119] + "…"


def check_value(base: str, value, threshold) -> str | None:
    """What is wrong with an assertion's (rendered) value for its type, as promptfoo's invariants say; or None."""
    text = isinstance(value, str)
    if base in ("contains", "icontains"):
        ok = text and value != "" or isinstance(value, (int, float)) and not isinstance(value, bool) \
            and not math.isnan(value)
        return None if ok else "must have a string or number value"
    if base.endswith(("-any", "-all")):
        if not truthy(value) or not (text or isinstance(value, list)):
            return "must have an array value (a list, or text of comma-separated values)"
        try:
            items_of(value)
        except ValueError as exc:
            return str(exc)
        return None
    if base in ("starts-with", "regex") and not (text and value):
        return "must have a string value"
    if base in ("levenshtein", "rouge-n") and not text:
        return "must have a string value"
    if base in ("is-json", "contains-json") and truthy(value):
        if not (text or isinstance(value, dict)):
            return "must have a string or object value (a JSON schema)"
        return _schema_problem(value)
    if base in ("latency", "cost") and threshold is None:
        return "must have a threshold" + (" in milliseconds" if base == "latency" else " in dollars")
    if base == "equals" and value is ...:
        return "must have a value"
    return None


def _schema_problem(value) -> str | None:
    import jsonschema
    import yaml

    try:
        schema = schema_of(value)
    except yaml.YAMLError as exc:
        return f"has a schema that is not YAML or JSON ({str(exc).splitlines()[0]})"
    if not isinstance(schema, (dict, bool)):
        return "has a schema that is not an object"
    try:
        jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator).check_schema(schema)
    except jsonschema.SchemaError as exc:
        return f"has an invalid JSON schema: {exc.message}"
    return None
