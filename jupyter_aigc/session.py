"""AigcSession: the kernel's state (config, model cache, conversation, history) and the %%gpt flow."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import replace
from itertools import product

from .backends.base import Request, Response
from .backends.local_image import LocalImageBackend
from .backends.local_text import LocalTextBackend
from .backends.openai_images import OpenAIImagesBackend
from .backends.openai_api import OpenAIBackend
from .cache import ModelCache
from .config import AigcConfig
from .errors import AigcError
from .models import resolve
from .prompts import ChatSession, interpolate
from .render import MarkdownRenderer, Renderer, TerminalRenderer, WidgetRenderer
from .runner import TextRunner, Variant
from .status import StatusPublisher
from .store import HistoryStore

MAX_COLUMNS = 12


def parse_list(value, kind, name: str, low: float, high: float) -> list:
    """'0,0.7' → [0.0, 0.7], each checked against [low, high]; None → [None]."""
    if value is None:
        return [None]
    items = []
    for part in str(value).split(","):
        try:
            item = kind(part.strip())
        except ValueError:
            raise AigcError(f"--{name} got '{part.strip()}', which is not a {kind.__name__}.",
                            f"Give a number, or a comma list like --{name} 0,0.7.") from None
        if not low <= item <= high:
            raise AigcError(f"--{name} {item} is out of range.", f"Use a value from {low} to {high}.")
        items.append(item)
    return items


class AigcSession:
    """One per kernel: created by %load_ext, kept across %reload_ext."""

    def __init__(self, shell):
        self.shell = shell
        self.config = AigcConfig(parent=shell)
        self.cache = ModelCache(int(self.config.cache_budget_gb * 2**30))
        self.config.observe(lambda change: setattr(self.cache, "budget_bytes", int(change.new * 2**30)),
                            "cache_budget_gb")
        self.chat = ChatSession()
        self.history = HistoryStore()
        self.aliases: dict = {}
        self.local = LocalTextBackend(self.cache, self.config.device, self.config.dtype)
        self.openai = OpenAIBackend(self.config.base_url, self.config.timeout, self.config.max_retries)
        self.config.observe(self._sync_backends, ["device", "dtype", "base_url", "timeout", "max_retries"])
        self.runner = TextRunner({"local": self.local, "openai": self.openai})
        self.local_images = LocalImageBackend(self.cache, self.config.device, self.config.dtype)
        self.openai_images = OpenAIImagesBackend(self.openai)
        self._generating = False
        self.status = StatusPublisher(self)

    @property
    def generating(self) -> bool:
        """True while a text or image generation runs; the JupyterLab status item shows it."""
        return self._generating

    @generating.setter
    def generating(self, value: bool) -> None:
        self._generating = value
        self.status.publish()

    def image(self, args, cell: str) -> None:
        from .images import run_image

        run_image(self, args, cell)

    def command(self, line: str) -> None:
        from .commands import run_command

        run_command(self, line)

    def _sync_backends(self, change=None) -> None:
        self.local.device, self.local.dtype = self.config.device, self.config.dtype
        self.local_images.device, self.local_images.dtype = self.config.device, self.config.dtype
        self.openai.base_url, self.openai.timeout = self.config.base_url, self.config.timeout
        self.openai.max_retries = self.config.max_retries

    def all_aliases(self) -> dict:
        return {**self.config.aliases, **self.aliases}

    def cell_id(self, cell: str) -> str:
        """JupyterLab's cell id when the frontend sends one, else the cell's text."""
        parent = getattr(self.shell, "parent_header", None) or {}
        cell_id = (parent.get("metadata") or {}).get("cellId")
        return cell_id or "source:" + hashlib.sha1(cell.encode()).hexdigest()

    def variants(self, args, prompt: str, cell_key: str) -> list[Variant]:
        """One Variant per model × temperature × top-p × seed; titles name what differs."""
        models = [m.strip() for m in args.compare.split(",") if m.strip()] if args.compare else [
            args.model or self.config.default_model]
        temperatures = parse_list(args.temperature, float, "temperature", 0.0, 2.0)
        top_ps = parse_list(args.top_p, float, "top-p", 1e-6, 1.0)
        seeds = parse_list(args.seed, int, "seed", 0, 2**63 - 1)
        max_tokens = args.max_tokens if args.max_tokens is not None else self.config.max_tokens
        if max_tokens < 1:
            raise AigcError(f"--max-tokens {max_tokens} must be at least 1.", "Use --max-tokens 256, say.")
        if not 1 <= args.n <= 8:
            raise AigcError(f"-n {args.n} is out of range.", "Ask for 1 to 8 completions.")
        combos = list(product(models, temperatures, top_ps, seeds))
        if len(combos) * args.n > MAX_COLUMNS:
            raise AigcError(f"That makes {len(combos) * args.n} columns.", f"Compare at most {MAX_COLUMNS}.")
        system = args.system if args.system is not None else self.config.system
        if args.raw:
            messages = [{"role": "user", "content": prompt}]
        else:
            messages = self.chat.messages(prompt, system, cell_key)
        variants = []
        for model, temperature, top_p, seed in combos:
            spec = resolve(model, self.all_aliases(), args.base_url)
            request = Request(
                messages=messages, model=spec.name, max_tokens=max_tokens,
                temperature=self.config.temperature if temperature is None else temperature,
                top_p=self.config.top_p if top_p is None else top_p,
                seed=seed, stop=list(args.stop), n=args.n, raw=args.raw, logprobs=args.logprobs,
            )
            title = [spec.name] if len(models) > 1 else []
            title += [f"temperature {temperature}"] if len(temperatures) > 1 else []
            title += [f"top-p {top_p}"] if len(top_ps) > 1 else []
            title += [f"seed {seed}"] if len(seeds) > 1 else []
            variants.append(Variant(spec, request, " · ".join(title)))
        return variants

    def gpt(self, args, cell: str, cancel: threading.Event | None = None) -> None:
        prompt = interpolate(cell.strip(), self.shell.user_ns)
        if not prompt:
            raise AigcError("The cell has no prompt.", "Write your prompt in the cell body, below %%gpt.")
        cell_key = self.cell_id(cell)
        if args.new:
            self.chat.reset()
        variants = self.variants(args, prompt, cell_key)
        for variant in variants:
            if variant.spec.backend == "local":
                self.local.load(variant.spec)  # load errors surface here, before any output
        widget = self._widget_frontend()
        renderer = self._renderer(variants, widget, stream=not args.no_stream)
        from . import _kernel_serves_comms_while_awaiting

        poll_ui = widget and cancel is None and not _kernel_serves_comms_while_awaiting(self.shell)
        responses = self._run(variants, renderer, args.key_env, cancel=cancel, poll_ui=poll_ui)
        self._record(args, cell_key, prompt, variants, responses)
        if widget:
            self._wire_controls(renderer, args, cell_key, prompt, variants)
        if args.attention:
            self._show_attention(variants, responses)

    def attention_view(self, text: str, model: str | None = None, layers: str | None = None,
                       heads: str | None = None):
        """An AttentionView of ``text`` for a local model taken from the cache (never a second copy)."""
        return self._attention_for(resolve(model or self.config.default_model, self.all_aliases()),
                                   text, layers, heads)

    def _attention_for(self, spec, text: str, layers: str | None = None, heads: str | None = None):
        from .attention import extract, parse_range
        from .widgets.attention_view import AttentionView

        if spec.backend != "local":
            raise AigcError(f"{spec.name} is served over an API, which returns no attention weights.",
                            "Pick a local model with -m (a folder, .gguf file or Hub id).")
        network, tokenizer = self.local.load(spec, encoder_ok=True)
        maps = extract(network, tokenizer, text, spec.name)
        layer_list = parse_range(layers, maps.shape[0], "layers")
        head_list = parse_range(heads, maps.shape[1], "heads")
        return AttentionView(maps, layer_list, head_list)

    def attention(self, args, cell: str) -> None:
        from IPython.display import display

        view = self.attention_view(interpolate(cell, self.shell.user_ns), args.model, args.layers, args.heads)
        if args.output:
            self.shell.user_ns[args.output] = view
        display(view)

    def _show_attention(self, variants: list[Variant], responses: list[Response]) -> None:
        """After %%gpt --attention: the view of the templated prompt followed by the first answer."""
        from IPython.display import display

        spec, request = variants[0].spec, variants[0].request
        if spec.backend != "local":
            raise AigcError("--attention needs a local model.", "Drop --base-url/openai: or pick a local -m.")
        _, tokenizer = self.local.load(spec)
        messages = request.messages + [{"role": "assistant", "content": responses[0].text}]
        if request.raw or not tokenizer.chat_template:
            text = "\n\n".join(m["content"] for m in messages)
        else:
            text = tokenizer.apply_chat_template(messages, tokenize=False)
        display(self._attention_for(spec, text))

    def _widget_frontend(self) -> bool:
        return type(self.shell).__name__ == "ZMQInteractiveShell" and self.config.widget

    def _renderer(self, variants: list[Variant], widget: bool, stream: bool) -> Renderer:
        if widget:
            from .widgets.gpt_view import GptView

            first = variants[0].request
            controls = {"temperature": first.temperature, "top_p": first.top_p,
                        "max_tokens": first.max_tokens, "seed": first.seed}
            renderer = WidgetRenderer(GptView(controls=controls))
        elif type(self.shell).__name__ == "ZMQInteractiveShell":
            renderer = MarkdownRenderer()
        else:
            renderer = TerminalRenderer()
        renderer.stream = stream
        return renderer

    def _run(self, variants, renderer: Renderer, key_env, cancel: threading.Event | None = None,
             poll_ui: bool = False) -> list[Response]:
        """Run to the end; Stop sets ``cancel``. ``poll_ui`` lets ipykernel 6 deliver Stop clicks meanwhile."""
        cancel = cancel or threading.Event()
        if isinstance(renderer, WidgetRenderer):
            renderer.view.on_stop = cancel.set
        self.generating = True
        try:
            if poll_ui:
                from jupyter_ui_poll import ui_events

                with ui_events() as poll:
                    responses = self.runner.run(variants, renderer, cancel, key_env, poll=lambda: poll(5))
            else:
                responses = self.runner.run(variants, renderer, cancel, key_env)
            self.status.record(responses)
            return responses
        finally:
            self.generating = False

    def _record(self, args, cell_key: str, prompt: str, variants, responses: list[Response]) -> None:
        """Chat memory (first answer), -o, history; a failed first answer leaves memory as it was."""
        first = responses[0]
        if not args.raw and first.text and first.finish_reason != "error":
            self.chat.record(cell_key, prompt, first.text, first.model)
        if args.output:
            texts = [r.text for r in responses]
            self.shell.user_ns[args.output] = texts[0] if len(texts) == 1 else texts
        for response in responses:
            self.history.append({"time": time.time(), "prompt": prompt, **response.metadata()})

    def _wire_controls(self, renderer: WidgetRenderer, args, cell_key, prompt, variants) -> None:
        """Regenerate (button or control change) reruns the cell's variants in place, in the background."""
        view = renderer.view
        shown = dict(view.controls)

        def regenerate(controls: dict) -> None:
            """Apply the controls the user changed; compared settings the user left alone stay per column."""
            if self.generating:
                return
            overrides = {k: v for k, v in controls.items() if k in shown and v != shown[k]
                         and (v is not None or k == "seed")}
            rerun = [replace(v, request=replace(v.request, **overrides)) for v in variants]
            view.controls = dict(controls)
            fresh = WidgetRenderer(view, renderer.handle, renderer.fallback)
            fresh.stream = True
            self.generating = True
            threading.Thread(target=self._regenerate, args=(rerun, fresh, args, cell_key, prompt),
                             daemon=True).start()

        view.on_regenerate = regenerate

    def _regenerate(self, variants, renderer, args, cell_key, prompt) -> None:
        try:
            responses = self._run(variants, renderer, args.key_env)
            self._record(args, cell_key, prompt, variants, responses)
        except AigcError as error:
            renderer.view.running = False
            column = {"title": "", "html": "", "status": "error", "footer": "", "error": str(error), "tokens": []}
            renderer.view.columns = [column]
        finally:
            self.generating = False
