"""%%aigc_eval --promptfoo SUITE: a promptfoo suite run as an evaluation, its assertions checked as promptfoo does.

One row per test (its vars and description are the fields), one variant per provider × prompt. Providers this
project can call: ``openai:MODEL``, ``openai:chat:MODEL`` and ``openai:completion:MODEL`` (with
``config.apiBaseUrl`` for an OpenAI-compatible server, ``apiKeyEnvar`` for its key), local models by this
project's names (e.g. ``SmolLM2-135M-Instruct``, a .gguf path, an alias), and promptfoo's ``echo`` (the answer is
the prompt). Their ``config`` may set temperature, max_tokens, top_p, seed and stop; as in promptfoo, temperature
defaults to 0 and max_tokens to 1024, and no system message is sent (``--system`` adds one). A suite without
providers runs the cell's own -m/--compare and sampling options. llm-rubric is graded by the suite's grading
provider (``defaultTest.options.provider``, a test's or an assertion's ``provider``) or else by ``--judge``.
Answers are stored and reused as %%aigc_eval's are; each cell gets ``checks`` (one per assertion) and scores
``pass`` and ``score`` (plus each named ``metric``).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, replace

from ..core.errors import AigcError
from ..core.models import ModelRef
from ..core.types import Request, Response
from ..engines.base import GENERATE
from ..options import check
from ..record.pricing import pricing
from ..views.outside import say
from .evaluate import BATCH, Cell, Evaluation, cell_key, summarise, weights_fingerprint
from .jstext import js_json
from .metrics import Metric
from .promptfoo_checks import Grader, judge, python_function
from .promptfoo_suite import Suite, load, render, rendered_value
from .runner import Variant

CONFIG_KEYS = {"apiBaseUrl", "apiHost", "apiKeyEnvar", "temperature", "max_tokens", "top_p", "seed", "stop"}
PROVIDERS = ("openai:MODEL, openai:chat:MODEL or openai:completion:MODEL (config.apiBaseUrl for an OpenAI-compatible "
             "server), echo, or a local model by this project's names (e.g. SmolLM2-135M-Instruct, a .gguf path)")
LINE_OPTIONS = ("model", "compare", "engine", "base_url", "temperature", "top_p", "seed", "max_tokens", "schema",
                "stop")


@dataclass
class Provider:
    id: str
    label: str
    variant: Variant
    key_env: str | None = None
    echo: bool = False


def provider_of(session, spec, where: str) -> Provider:
    """A promptfoo provider (an id, {id, label, config}, or {id: {config}}) as a variant this project runs."""
    if isinstance(spec, dict) and "id" not in spec and len(spec) == 1:
        (name, options), = spec.items()
        spec = {"id": name, **(options or {})}
    spec = {"id": spec} if isinstance(spec, str) else spec
    if not isinstance(spec, dict) or not isinstance(spec.get("id"), str):
        raise AigcError(f"{where} has no id.", f"Name each provider: {PROVIDERS}.")
    name, label, config = spec["id"], spec.get("label"), spec.get("config") or {}
    if not isinstance(config, dict):
        raise AigcError(f"{where} '{name}': its config is not a mapping.",
                        f"Its config may set {', '.join(sorted(CONFIG_KEYS))}.")
    extra = sorted(set(spec) - {"id", "label", "config"}) or sorted(set(config) - CONFIG_KEYS)
    if "apiKey" in config:
        raise AigcError(f"{where} '{name}' has an apiKey in the suite.", "Keep keys out of suites: name the "
                        "environment variable that holds it with config.apiKeyEnvar (a local server needs none).")
    if extra:
        raise AigcError(f"{where} '{name}': '{extra[0]}' is not supported here.",
                        f"Its config may set {', '.join(sorted(CONFIG_KEYS))}.")
    if name == "echo":
        return Provider(name, label or name, Variant(ModelRef("echo", "echo", "echo"), Request([], "echo")), echo=True)
    base_url = config.get("apiBaseUrl") or (f"https://{config['apiHost']}/v1" if config.get("apiHost") else None)
    raw, parts = False, name.split(":")
    if parts[0] == "openai":
        if len(parts) == 2 and parts[1] not in ("chat", "completion"):
            model = parts[1]
        elif len(parts) >= 3 and parts[1] in ("chat", "completion") and ":".join(parts[2:]):
            model, raw = ":".join(parts[2:]), parts[1] == "completion"
        else:
            raise AigcError(f"{where} '{name}' is not a provider this project can call.", f"Use {PROVIDERS}.")
        text = "openai:" + model
    elif name not in session.all_aliases() and re.match(r"[A-Za-z][\w.+-]*:(?![\\/])", name) \
            and not name.startswith("local:"):
        raise AigcError(f"{where} '{name}' is not a provider this project can call.", f"Use {PROVIDERS}.")
    else:
        text = name
    try:
        ref = session.resolve(text, base_url)
        session.registry.serving(ref, GENERATE)
    except AigcError as error:
        raise AigcError(f"{where} '{name}' cannot be used: {error.message}", error.fix) from None

    def setting(key: str, default):
        return default if config.get(key) is None else check(key, config[key], f"{where} config.{key}")

    stop = config.get("stop") or []
    request = Request(messages=[], model=ref.name, max_tokens=setting("max_tokens", 1024),
                      temperature=setting("temperature", 0.0), top_p=setting("top_p", session.config.top_p),
                      seed=setting("seed", None), stop=[stop] if isinstance(stop, str) else list(stop), raw=raw)
    return Provider(name, label or name, Variant(ref, request), config.get("apiKeyEnvar"))


def providers_of(task, args, suite: Suite, namespace: dict) -> list[Provider]:
    """The suite's providers; a suite without any runs the cell's own model options."""
    if suite.providers:
        given = [f"--{n.replace('_', '-')}" for n in LINE_OPTIONS if getattr(args, n, None)]
        if given:
            raise AigcError(f"{given[0]} does not apply: the suite names its providers.",
                            "Set models and sampling in the suite's providers, or take them out of the suite.")
        providers = [provider_of(task.session, spec, f"Provider {i + 1}") for i, spec in enumerate(suite.providers)]
    else:
        from .gpt import sampling_grid

        providers = [Provider(v.ref.name, v.title or v.ref.name, v, args.key_env)
                     for v in sampling_grid(task.session, args, namespace)]
    labels = [p.label for p in providers]
    for p, label in zip(providers, labels):  # same names: say the settings that differ
        if labels.count(label) > 1:
            twins = [q.variant.request for q, other in zip(providers, labels) if other == label]
            differ = [k for k in ("temperature", "top_p", "seed", "max_tokens")
                      if len({getattr(r, k) for r in twins}) > 1]
            p.label += "".join(f" · {k.replace('_', '-')} {getattr(p.variant.request, k)}" for k in differ
                               if getattr(p.variant.request, k) is not None)
    return providers


def _grader(task, args, spec, where: str) -> Provider:
    """llm-rubric's grader: the suite's grading provider, else --judge (temperature 0, up to 512 tokens)."""
    if spec is not None:
        provider = provider_of(task.session, spec, where + " grading provider")
        if provider.echo:
            raise AigcError(f"{where}: echo cannot grade.", "Name a model as the grading provider, or use --judge.")
        return provider
    if not args.judge:
        raise AigcError(f"{where} is llm-rubric, which needs a grader.",
                        "Give --judge MODEL, or name one in the suite's defaultTest.options.provider.")
    ref = task.judge_model(args.judge, args.key_env)
    return Provider(args.judge, args.judge, Variant(ref, Request(messages=[], model=ref.name, max_tokens=512,
                                                                 temperature=0.0)), args.key_env)


def _checks(task, args, suite: Suite, namespace: dict) -> tuple[list, list, list]:
    """Per test, per assertion: its value rendered and checked, its python function, its llm-rubric grader."""
    values, functions, graders, cache, judges = [], [], [], {}, {}

    def grading(spec, where: str) -> Provider:
        key = js_json(spec)
        if key not in judges:
            judges[key] = _grader(task, args, spec, where)
        return judges[key]

    for r, test in enumerate(suite.tests):
        where = [f"Test {r + 1}" + (f" ({test.description})" if test.description else "") + f", assertion {n + 1}"
                 for n in range(len(test.checks))]
        values.append([rendered_value(c, test.vars, suite.base, w) for c, w in zip(test.checks, where)])
        functions.append([python_function(v, namespace, suite.base, cache) if c.base == "python" else None
                          for c, v in zip(test.checks, values[-1])])
        graders.append([grading(c.grader or test.options.get("provider"), w)
                        if c.base == "llm-rubric" else None for c, w in zip(test.checks, where)])
    return values, functions, graders


def _cells(task, system: str | None, suite: Suite, providers: list[Provider], variants: list[Variant]):
    """The grid's rows (a test's description and vars) and its cells, row by row: each prompt rendered with the
    test's vars (vars that are templates themselves rendered first, as promptfoo does), keyed as stored answers."""
    prompts = suite.prompts
    weights = [w for p in providers for w in [None if p.echo else weights_fingerprint(
        p.variant.ref, task._saved(p.variant.ref))] * len(prompts)]
    described = any(t.description for t in suite.tests)
    rows, cells = [], []
    for r, test in enumerate(suite.tests):
        rows.append(({"description": test.description} if described else {}) |
                    {k if k != "description" else "var_description": v for k, v in test.shown.items()})
        rendered_vars = {k: render(x, test.vars, f"Test {r + 1}: var '{k}'") if isinstance(x, str) and "{" in x
                         else x for k, x in test.vars.items()}
        texts = [render(test.options.get("prefix", "") + prompt.raw + test.options.get("suffix", ""), rendered_vars,
                        f"Prompt {p + 1} with test {r + 1}") for p, prompt in enumerate(prompts)]
        for v, variant in enumerate(variants):
            text = texts[v % len(prompts)]
            messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
            asked = replace(variant, request=replace(variant.request, messages=messages))
            cells.append(Cell(r, v, text, cell_key(asked, text, weights[v])))
    return rows, cells


def run_promptfoo(task, args, template: str, namespace: dict, cancel: threading.Event, view=None) -> Evaluation:
    """Run the suite named by --promptfoo (``task`` is the EvalTask: stored answers, the runner, the record)."""
    for flag, name in (("--data", "data"), ("--reference", "reference"), ("--metrics", "metrics"),
                       ("--rubric", "rubric")):
        if getattr(args, name, None):
            raise AigcError(f"{flag} does not apply with --promptfoo.", "The suite holds the tests and assertions.")
    if getattr(args, "task", "generate") not in (None, "generate"):
        raise AigcError("--task choice does not apply with --promptfoo.", "Run the suite without --task.")
    session, suite = task.session, load(args.promptfoo, namespace, template)
    providers = providers_of(task, args, suite, namespace)
    prompts = suite.prompts
    short = [q.label if len(q.label) <= 40 else q.label[:39] + "…" for q in prompts]
    variants = [replace(p.variant, title=p.label + (f" · {label}" if len(prompts) > 1 else ""))
                for p in providers for label in short]
    titles = [v.title for v in variants]
    if len(set(titles)) < len(titles):
        titles = [f"{chr(65 + i)}: {t}" for i, t in enumerate(titles)]
    values, functions, graders = _checks(task, args, suite, namespace)
    if any(c.base == "cost" for t in suite.tests for c in t.checks):
        for p in providers:
            ref = p.variant.ref
            if not p.echo and (ref.engine != "openai" or ref.base_url or ref.source not in pricing()):
                raise AigcError(f"cost assertions need the price of {p.label}, which is not in the pricing table.",
                                "Leave cost out for local models and servers (their answers cost nothing).")
    rows, cells = _cells(task, args.system, suite, providers, variants)
    names = list(dict.fromkeys(["pass", "score"] + [render(c.metric, t.vars, "metric") for t in suite.tests
                                                     for c in t.checks if c.metric]))
    evaluation = Evaluation(rows, titles, names, cells, include_partial=bool(getattr(args, "include_partial", False)),
                            task="promptfoo")
    grader = Grader(suite, providers, prompts, values, functions, graders, evaluation)
    echoed = {v for v, p in enumerate(variants) if providers[v // len(prompts)].echo}
    model_cells = [c for c in cells if c.variant not in echoed]
    if not args.fresh:
        task._reuse(model_cells, grader)
    evaluation.reused = sum(c.reused for c in cells)
    if view is not None:
        view.begin(evaluation)
    rubric_left: set[int] = set()

    def done(cell: Cell) -> None:
        grader.score(cell)
        if cell.scores or cell.response.finish_reason == "error":
            if view is not None:
                view.cell_done(evaluation, cell)
        else:
            rubric_left.add(id(cell))

    for cell in cells:
        if cell.variant in echoed and not cancel.is_set():
            cell.response = Response(text=cell.prompt, model="echo", engine="echo", params={})
            done(cell)
    todo = [c for c in model_cells if c.response is None]
    groups: dict = {}
    for cell in todo:
        groups.setdefault(providers[cell.variant // len(prompts)].key_env or args.key_env, []).append(cell)
    for key_env, group in groups.items():
        session.gpt.prepare(list({id(variants[c.variant].ref): variants[c.variant] for c in group}.values()), key_env)
        for start in range(0, len(group), BATCH):
            if cancel.is_set():
                break
            task._answer(group[start:start + BATCH], variants, args.system, cancel, key_env, done)
    evaluation.stopped = cancel.is_set()
    if grader.pending():
        judge(task, args, grader, cancel)
        if view is not None:
            for cell in cells:
                if id(cell) in rubric_left:
                    view.cell_done(evaluation, cell)
    evaluation.summary = summarise(evaluation, [Metric(n, lambda *a: None) for n in names])
    answered = [c for c in cells if c.response is not None]
    all_failed = bool(answered) and len(evaluation.failed) == len(answered)
    task._record(evaluation, "\n---\n".join(p.raw for p in prompts), variants, failed=all_failed)
    if view is not None:
        view.end(evaluation)
    if all_failed:
        raise AigcError(f"All {len(answered)} answers failed: {evaluation.first_error()}",
                        "Nothing was checked; fix that and run the cell again.")
    if evaluation.failed:
        say(evaluation.failures())
    if grader.failed_code:
        say(f"A python assertion failed to run ({grader.failed_code}); it counts as failed.")
    passed = sum(c.scores.get("pass") == 1.0 for c in cells)
    checked = sum("pass" in c.scores for c in cells)
    say(f"promptfoo suite {suite.label}: {passed} of {checked} answers passed their test.")
    return evaluation
