"""The text task behind %%gpt (and, later, evaluation): options → variants → runner → record.

No IPython here: the magic hands over parsed options, the prompt (already interpolated), a view and a
callback for ``-o``; the task decides what to run and remembers what came back.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from itertools import product
from typing import Callable

from ..core.errors import AigcError
from ..core.types import Request, Response
from ..engines.base import GENERATE, LOGPROBS, SCHEMA
from ..options import check, check_list, stop_sequences
from .runner import Variant

MAX_COLUMNS = 12


def parse_schema(text: str | None, namespace: dict) -> dict | None:
    """``--schema``: inline JSON, or the name of a variable holding a dict (or a pydantic model class)."""
    if not text:
        return None
    text = text.strip()
    if text.startswith("{"):
        try:
            schema = json.loads(text)
        except ValueError as exc:
            raise AigcError(f"--schema is not valid JSON ({exc}).", "Quote it: --schema '{\"type\": \"object\"}'.") from None
    elif text in namespace:
        schema = namespace[text]
        if hasattr(schema, "model_json_schema"):
            schema = schema.model_json_schema()
    else:
        raise AigcError(f"--schema '{text}' is neither JSON nor a variable.",
                        "Give inline JSON or the name of a variable that holds the schema dict.")
    if not isinstance(schema, dict):
        raise AigcError(f"--schema must be a JSON object (a dict), not {type(schema).__name__}.",
                        "Pass a JSON schema such as {\"type\": \"object\", \"properties\": {...}}.")
    import jsonschema

    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise AigcError(f"--schema is not a valid JSON schema: {exc.message}.", "Fix the schema.") from None
    return schema


def sampling_grid(session, args, namespace: dict) -> list[Variant]:
    """The variants a cell's options ask for (models × temperatures × top-ps × seeds), checked, with no
    messages yet; titles name what differs. Shared by %%gpt and %%aigc_eval."""
    config = session.config
    if args.compare is not None:
        models = [m.strip() for m in args.compare.split(",") if m.strip()]
        if not models:
            raise AigcError(f"--compare '{args.compare}' names no model.",
                            'Give comma-separated models, e.g. --compare "SmolLM2-135M-Instruct,openai:gpt-4o-mini".')
    else:
        models = [args.model]
    temperatures = check_list("temperature", args.temperature)
    top_ps = check_list("top_p", args.top_p)
    seeds = check_list("seed", args.seed)
    max_tokens = check("max_tokens", args.max_tokens) if args.max_tokens is not None else config.max_tokens
    n = check("n", getattr(args, "n", 1), "-n")
    raw, logprobs = getattr(args, "raw", False), getattr(args, "logprobs", False)
    stop = stop_sequences(args.stop)
    schema = parse_schema(args.schema, namespace)
    combos = list(product(models, temperatures, top_ps, seeds))
    if len(combos) * n > MAX_COLUMNS:
        raise AigcError(f"That makes {len(combos) * n} columns.", f"Compare at most {MAX_COLUMNS}.")
    variants = []
    for model, temperature, top_p, seed in combos:
        ref = session.resolve(model, args.base_url, args.engine)
        for capability in [GENERATE] + [LOGPROBS] * logprobs + [SCHEMA] * (schema is not None):
            session.registry.serving(ref, capability)  # a clear error naming an engine that can
        request = Request(
            messages=[], model=ref.name, max_tokens=max_tokens,
            temperature=config.temperature if temperature is None else temperature,
            top_p=config.top_p if top_p is None else top_p,
            seed=seed, stop=stop, n=n, raw=raw, logprobs=logprobs, schema=schema,
        )
        variants.append(Variant(ref, request))
    compared = {key for key, values in (("temperature", temperatures), ("top_p", top_ps), ("seed", seeds))
                if len(values) > 1}
    return titled(variants, len(models) > 1, compared)


SETTING_TITLES = (("temperature", "temperature {}"), ("top_p", "top-p {}"), ("seed", "seed {}"))


def titled(variants: list[Variant], models: bool, compared: set) -> list[Variant]:
    """Each column titled with what is compared (the model when several, then the ``compared`` settings), from
    the values it actually uses: a shared control moved later shows its new value in every column."""
    def title(variant: Variant) -> str:
        parts = [variant.ref.name] if models else []
        parts += [label.format(getattr(variant.request, key)) for key, label in SETTING_TITLES if key in compared]
        return " · ".join(parts)

    return [replace(v, title=title(v)) for v in variants]


class GptTask:
    """Decides what a %%gpt cell runs, runs it, and records it (memory, history, ``-o``)."""

    def __init__(self, session):
        self.session = session

    def variants(self, args, prompt: str, cell_key: str, namespace: dict) -> list[Variant]:
        """One Variant per model × temperature × top-p × seed, with this cell's messages."""
        variants = sampling_grid(self.session, args, namespace)
        config = self.session.config
        system = args.system if args.system is not None else config.system
        if args.raw:
            messages = [{"role": "user", "content": prompt}]
        else:
            messages = self.session.chat.messages(prompt, system, cell_key)
        return [replace(v, request=replace(v.request, messages=messages)) for v in variants]

    def prepare(self, variants: list[Variant], key_env: str | None = None) -> None:
        """Load every model (and find every key) now, so an error fails the cell before any output."""
        seen = set()
        for variant in variants:
            if variant.ref not in seen:
                seen.add(variant.ref)
                self.session.registry.engine(variant.ref).prepare(variant.ref, key_env)

    def run(self, variants: list[Variant], view, cancel: threading.Event, key_env: str | None) -> list[Response]:
        session = self.session
        session.begin()
        try:
            responses = session.runner.run(variants, view, cancel, key_env)
            session.status.record(responses)
        finally:
            session.end()
        return responses

    def record(self, raw: bool, cell_key: str, prompt: str, responses: list[Response]) -> None:
        """Chat memory (the first answer, marked if cut off) and history; a failed answer leaves memory as it was."""
        first = responses[0]
        if not raw and first.text and first.finish_reason != "error":
            self.session.chat.record(cell_key, prompt, first.text, first.model, first.finish_reason)
        for response in responses:
            self.session.history.append({"time": time.time(), "prompt": prompt, **response.metadata()})

    @staticmethod
    def output_value(responses: list[Response]):
        """What ``-o`` stores: the parsed object with --schema, else the text; a list for several answers."""
        values = [r.parsed if r.parsed is not None else r.text for r in responses]
        return values[0] if len(values) == 1 else values

    @staticmethod
    def failure(responses: list[Response]) -> AigcError | None:
        """The first answer that failed or came back unusable (the cell is then marked failed)."""
        for response in responses:
            if response.error and response.finish_reason != "stopped":
                return AigcError(response.error)
        return None

    @staticmethod
    def with_controls(variants: list[Variant], controls: dict, shown: dict) -> list[Variant]:
        """The variants with the widget's changed controls applied, checked like the options; compared
        settings the user left alone stay per column."""
        overrides = {}
        for key, value in controls.items():
            if key not in shown or value == shown[key] or (value is None and key != "seed"):
                continue
            overrides[key] = None if value is None else check(key, value)
        rerun = [replace(v, request=replace(v.request, **overrides)) for v in variants]
        compared = {key for key, _ in SETTING_TITLES if len({getattr(v.request, key) for v in variants}) > 1}
        return titled(rerun, len({v.ref.name for v in variants}) > 1, compared)

    def run_cell(self, args, prompt: str, cell_key: str, namespace: dict, cancel: threading.Event,
                 make_view: Callable, store: Callable[[str, object], None]) -> tuple[list[Variant], list[Response]]:
        """One %%gpt cell: plan, load, stream into the view, record; the view may regenerate later."""
        if args.new:
            self.session.chat.reset()
        variants = self.variants(args, prompt, cell_key, namespace)
        self.prepare(variants, args.key_env)
        view = make_view(variants[0].request, stream=not args.no_stream)
        if getattr(view, "interactive", False):
            view.on_stop = cancel.set
        responses = self.run(variants, view, cancel, args.key_env)
        self._finish(args, cell_key, prompt, responses, store)
        if getattr(view, "interactive", False):
            self._wire(view, args, cell_key, prompt, variants, store)
        return variants, responses

    def _finish(self, args, cell_key, prompt, responses, store) -> None:
        self.record(args.raw, cell_key, prompt, responses)
        if args.output and any(r.text or r.parsed is not None for r in responses):
            store(args.output, self.output_value(responses))  # a cell that got nothing leaves -o as it was

    def _wire(self, view, args, cell_key, prompt, variants, store) -> None:
        """Regenerate (button or control change) reruns the cell's variants in place, in the background."""
        shown = dict(view.controls)
        lock = threading.Lock()

        def regenerate(controls: dict) -> None:
            if not lock.acquire(blocking=False):
                return
            try:
                rerun = self.with_controls(variants, controls, shown)
            except Exception as error:  # the lock is released and the widget answers, whatever was sent
                lock.release()
                view.show_error(str(error) if isinstance(error, AigcError)
                                else f"Regenerate failed: {type(error).__name__}: {error}")
                return
            view.controls = dict(controls)
            cancel = threading.Event()
            view.on_stop = cancel.set

            def work() -> None:
                try:
                    responses = self.run(rerun, view.again(), cancel, args.key_env)
                    self._finish(args, cell_key, prompt, responses, store)
                except AigcError as error:
                    view.show_error(str(error))
                except Exception as error:  # the widget must never stay "running"
                    view.show_error(f"Regenerate failed: {type(error).__name__}: {error}")
                finally:
                    lock.release()

            threading.Thread(target=work, daemon=True, name="aigc-regenerate").start()

        view.on_regenerate = regenerate
