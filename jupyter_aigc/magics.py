"""AigcMagics: declarations and option parsing only; every magic runs its task through ``_run``.

``_run`` is the one error and cancel wrapper: a user's mistake or a failed task ends the cell as IPython's
``UsageError`` does (one line, no traceback, the cell marked failed so Run All stops), and the work runs
as a ``Job`` that Stop and Kernel → Interrupt end. On kernels that serve widget messages while a cell
awaits (ipykernel ≥ 7.4) cells that start with one of these magics are awaited (see ``AwaitMagics``);
older kernels poll the UI with jupyter-ui-poll; terminals just wait.
"""

from __future__ import annotations

import contextvars
import hashlib
import sys
from dataclasses import dataclass
from typing import Callable

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_cell_magic, line_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import magic_arguments

from .core.cancel import Job, SteppedJob
from .core.errors import AigcError
from .core.template import interpolate
from .options import declare, magic_names, parse_argstring
from .views import frontend
from .views.outside import plain, say

_AWAITED = contextvars.ContextVar("jupyter_aigc_awaited", default=False)


@dataclass
class Pending:
    """The work of a magic called from an awaited cell: the awaiting caller runs it."""

    work: Callable
    here: bool = False  # a SteppedJob on the cell's own thread, not a Job in a thread of its own


def usage_error(error: AigcError) -> UsageError:
    """IPython prints a UsageError as one line: masked, with escape and bidi characters made visible."""
    return UsageError(plain(str(error)))


def kernel_serves_comms_while_awaiting(shell) -> bool:
    """ipykernel ≥ 7.4 dispatches widget messages while a cell awaits; older kernels use jupyter-ui-poll."""
    if frontend(shell) != "jupyter":
        return False
    try:
        import ipykernel
    except ImportError:
        return False
    return tuple(int(p) for p in ipykernel.__version__.split(".")[:2]) >= (7, 4)


class MagicsBase(Magics):
    """What every magic class of jupyter-aigc shares: the session, ``_run``, option parsing, storing a result."""

    def __init__(self, shell, session):
        super().__init__(shell)
        self.session = session

    def _run(self, work: Callable, here: bool = False):
        """Run ``work(cancel)`` for a cell: awaited by ``run_async``, or waited for here. ``here``: ``work`` is a
        generator run on this thread between its steps (``SteppedJob``, for training)."""
        if _AWAITED.get():
            return Pending(work, here)
        job = SteppedJob(work) if here else Job(work)
        try:
            if frontend(self.shell) == "jupyter" and not kernel_serves_comms_while_awaiting(self.shell):
                from jupyter_ui_poll import ui_events

                with ui_events() as poll:
                    job.run(poll=lambda: poll(5))
            else:
                job.run()
        except AigcError as error:
            raise usage_error(error) from None

    async def run_async(self, name: str, line: str, cell: str | None = None) -> None:
        """An awaited cell: the magic parses here, its work runs while the kernel serves widget messages."""
        token = _AWAITED.set(True)
        try:
            if cell is None:
                pending = self.shell.run_line_magic(name, line)
            else:
                pending = self.shell.run_cell_magic(name, line, cell)
        finally:
            _AWAITED.reset(token)
        if isinstance(pending, Pending):
            try:
                await (SteppedJob if pending.here else Job)(pending.work).run_async()
            except AigcError as error:
                raise usage_error(error) from None

    def _parse(self, magic, line: str):
        """The options, after ``{var}`` in the line is filled in by the same rule as the body."""
        try:
            return parse_argstring(magic, interpolate(line, self.shell.user_ns))
        except AigcError as error:
            raise usage_error(error) from None

    def _store(self, name: str, value) -> None:
        self.shell.user_ns[name] = value

    def _cell_key(self, cell: str) -> str:
        """JupyterLab's cell id when the frontend sends one, else the cell's text."""
        parent = getattr(self.shell, "parent_header", None) or {}
        cell_id = (parent.get("metadata") or {}).get("cellId")
        return cell_id or "source:" + hashlib.sha1(cell.encode()).hexdigest()

    def _attention_view(self, text: str, model, layers=None, heads=None, answer=None):
        from .tasks.attention import attention_maps
        from .views.widgets.attention_view import AttentionView

        maps = attention_maps(self.session, text, model, layers, heads, answer)  # ranges checked before the pass
        if maps.dropped:
            say(f"The text is {len(maps.tokens) + maps.dropped} tokens; the view shows the first "
                f"{len(maps.tokens)} (the model's context).", file=sys.stderr)
        return AttentionView(maps)



@magics_class
class AigcMagics(MagicsBase):
    """%%gpt, %%aigc_image, %%aigc_eval, %%aigc_finetune, %aigc_train_image and %aigc (the teaching views'
    magics are TeachingMagics, in teaching_magics.py); spec.json lists them all."""

    @magic_arguments()
    @declare("gpt")
    @no_var_expand
    @cell_magic
    def gpt(self, line, cell):
        """Send the cell to a language model and stream the answer.

        The cell body is the prompt; {name} inserts a variable from the notebook ({{ and }} give
        literal braces; unknown names stay as written). Consecutive cells form one conversation;
        re-running a cell replaces its earlier turn. Examples::

            %%gpt --temperature 0
            What is the capital of France?

            %%gpt -m openai:gpt-4o-mini -o answer
            Summarise {text} in one sentence.

            %%gpt --compare "SmolLM2-135M-Instruct,local-llama" --temperature 0,0.8
            Write a haiku about notebooks.

            %%gpt --schema '{"type": "object", "properties": {"city": {"type": "string"}}}' -o data
            Which city is the capital of France? Answer in JSON.
        """
        args = self._parse(self.gpt, line)
        return self._run(lambda cancel: self._gpt(args, cell, cancel))

    def _gpt(self, args, cell: str, cancel) -> None:
        from .views import text_view

        namespace = self.shell.user_ns
        prompt = interpolate(cell.strip(), namespace)
        if not prompt:
            raise AigcError("The cell has no prompt.", "Write your prompt in the cell body, below %%gpt.")
        session = self.session
        variants, responses = session.gpt.run_cell(
            args, prompt, self._cell_key(cell), namespace, cancel,
            lambda first, stream: text_view(self.shell, session.config, first, stream), self._store)
        failure = session.gpt.failure(responses)
        if failure is not None:
            raise failure
        if args.attention:
            from IPython.display import display

            from .tasks.attention import conversation_text

            ref, request = variants[0].ref, variants[0].request
            from .views.waiting import Waiting

            with Waiting("Computing the attention of the prompt and the answer", shown=frontend(self.shell) == "jupyter"):
                text, answer = conversation_text(self.session, ref, request, responses[0].text)
                view = self._attention_view(text, ref, answer=answer)
            display(view)

    @magic_arguments()
    @declare("aigc_image")
    @no_var_expand
    @cell_magic
    def aigc_image(self, line, cell):
        """Turn the cell body into images, from a local diffusers pipeline or the OpenAI Images API.

        Example::

            %%aigc_image -m ./my-sd-pipeline --size 512x512 --steps 20 --seed 1 -n 2 -o images
            A lighthouse at dusk, watercolour.
        """
        args = self._parse(self.aigc_image, line)

        def work(cancel) -> None:
            from .tasks.image import run_image

            gallery = None
            if frontend(self.shell) == "jupyter":
                from IPython.display import display

                from .views.widgets.image_gallery import ImageGallery

                gallery = ImageGallery()
                display(gallery)
            try:
                run_image(self.session, args, interpolate(cell.strip(), self.shell.user_ns), cancel, gallery,
                          self._store, say)
            finally:
                if gallery is not None:
                    gallery.update_static_copy()  # the saved notebook's copy: the finished images

        return self._run(work)

    @magic_arguments()
    @declare("aigc_eval")
    @no_var_expand
    @line_cell_magic
    def aigc_eval(self, line, cell=None):
        """Run the cell's prompt template over a dataset for every variant, and score the answers.

        ``{column}`` fills in each row's fields. Variants are every combination of --compare models and comma
        lists of sampling settings, as in %%gpt. Answers are stored: a re-run asks again only for what
        changed (--fresh asks again for everything). Example::

            %%aigc_eval --data questions --reference answer --metrics exact,rouge --temperature 0,0.8 -o results
            Answer in one word. {question}

        Multiple choice (each choice scored by its log-probability after the prompt, like lm-evaluation-harness;
        reports acc and acc_norm)::

            %%aigc_eval --task choice --data quiz --choices options --answer label
            Question: {question}
            Answer:

        A promptfoo suite (its prompts, providers, tests and assertions; a path or a dict variable)::

            %aigc_eval --promptfoo promptfooconfig.yaml -o results
        """
        args = self._parse(self.aigc_eval, line)
        return self._run(lambda cancel: self._evaluate(args, cell or "", cancel))

    def _evaluate(self, args, cell: str, cancel) -> None:
        from IPython.display import display

        from .views.eval import TerminalEvalView, evaluation_html

        if not args.data and not args.promptfoo:
            raise AigcError("%%aigc_eval needs --data.", "Name a variable holding the examples, or a .csv/.jsonl path "
                            "(or give a promptfoo suite with --promptfoo).")
        if not cell.strip() and not args.promptfoo:
            raise AigcError("The cell has no prompt template.", "Write the prompt below the first line, with "
                            "{column} where each example's field goes.")
        copy = None  # the saved notebook's HTML copy, redrawn as ratings come
        if frontend(self.shell) == "jupyter":
            from .views.widgets.eval_grid import EvalGrid

            def rate(evaluation, row, variant, rating) -> None:
                self.session.evaluate.rate(evaluation, row, variant, rating)
                if copy is not None:
                    copy.update({"text/html": evaluation_html(evaluation)}, raw=True,
                                metadata={"jupyter_aigc": {"evaluation": evaluation.summary}})

            view = EvalGrid(blind=bool(args.blind))
            view.on_stop, view.on_rate = cancel.set, rate
            display(view)
        else:
            view = TerminalEvalView()
        evaluation = self.session.evaluate.run(args, cell, self.shell.user_ns, cancel, view)
        if args.output:
            self._store(args.output, self.session.evaluate.dataframe(evaluation))
        if frontend(self.shell) == "jupyter":
            copy = display({"text/html": evaluation_html(evaluation)}, raw=True, display_id=True,
                           metadata={"jupyter_aigc": {"evaluation": evaluation.summary}})
        asked = sum(c.response is not None for c in evaluation.cells) - evaluation.reused
        print(f"{asked} {'items scored' if evaluation.task == 'choice' else 'answers asked'}, "
              f"{evaluation.reused} reused from earlier runs"
              + (" (stopped: finished rows kept)" if evaluation.stopped else "") + ".")

    @magic_arguments()
    @declare("aigc_finetune")
    @no_var_expand
    @line_cell_magic
    def aigc_finetune(self, line, cell=None):
        """Fine-tune a local model on examples (a LoRA adapter by default); the result joins the cache as NAME.

        Examples come from --data, or from the cell body: 'Q: question' / 'A: answer' pairs separated by blank
        lines. A live chart shows the loss; Stop (or Kernel → Interrupt) ends at the next step and keeps the
        adapter as trained so far. Example::

            %%aigc_finetune --name zubrowka
            Q: What is the capital of Zubrowka?
            A: The capital of Zubrowka is Lutz.

            %aigc_finetune --name support --data tickets --epochs 3
        """
        args = self._parse(self.aigc_finetune, line)
        return self._run(lambda cancel: self._finetune(args, cell or "", cancel))

    def _finetune(self, args, cell: str, cancel) -> None:
        from IPython.display import display

        if frontend(self.shell) == "jupyter":
            from .views.widgets.finetune_view import FinetuneView

            view = FinetuneView(title=f"Fine-tuning {args.name or ''} on {args.model or self.session.config.default_model}")
            view.on_stop = cancel.set
            display(view)
        else:
            from .views.widgets.finetune_view import TerminalFinetuneView

            view = TerminalFinetuneView()
        try:
            result = self.session.finetune.run(args, cell, self.shell.user_ns, cancel, view)
        finally:
            view.update_static_copy()  # the saved notebook's static copy: the final losses and chart
        if args.output:
            self._store(args.output, result)
        losses = result.progress.losses
        trained = f"loss {losses[0][1]:.3f} → {losses[-1][1]:.3f}" if losses else "no step finished"
        say(f"{result.name}: {result.progress.status} after {result.progress.step} steps ({trained}); "
              f"saved to {result.folder}" + (f", merged model in {result.merged}" if result.merged else "")
              + f". Use it with %%gpt -m {result.name} (a later kernel: -m {result.folder}).")
        if not args.full and result.ref.gguf:
            print("It runs on the transformers engine: llama.cpp takes LoRA adapters only as GGUF files, and no "
                  "installed package converts a peft adapter to one (--merge saves a plain model folder).")

    @magic_arguments()
    @declare("aigc_train_image")
    @no_var_expand
    @line_magic
    def aigc_train_image(self, line):
        """Train a small image model in the notebook: a VAE, a GAN or a diffusion model (diffusers' UNet2DModel).

        A live view shows the losses and a grid of samples from fixed noise as they learn; Stop (or Kernel →
        Interrupt) keeps the model as trained so far. Then %%aigc_image -m NAME draws with it, the prompt naming
        the class. Example::

            %aigc_train_image --kind diffusion --data digits --name digits
            %%aigc_image -m digits --seed 1 -n 4
            a handwritten 7
        """
        args = self._parse(self.aigc_train_image, line)
        return self._run(lambda cancel: self._train_image(args, cancel), here=True)

    def _train_image(self, args, cancel):
        """A generator: training yields between its steps (see ``SteppedJob``)."""
        from .views.widgets.image_lab_view import ImageLabView, TerminalImageLabView

        if frontend(self.shell) == "jupyter":
            from IPython.display import display

            view = ImageLabView(title=f"Training {args.kind or ''} {args.name or ''} on {args.data}")
            view.on_stop = cancel.set
            display(view)
        else:
            view = TerminalImageLabView()
        try:
            result = yield from self.session.image_lab.run(args, self.shell.user_ns, cancel, view)
        finally:
            view.update_static_copy()  # the saved notebook's static copy: the last sample grid and losses
        if args.output:
            self._store(args.output, result)
        progress = result.progress
        curves = ", ".join(f"{name} {points[-1][1]:.3f}" for name, points in progress.curves.items() if points)
        say(f"{result.name}: {result.kind} {progress.status} after {progress.epoch:.1f} epochs"
            + (f" ({curves})" if curves else "") + f"; saved to {result.folder}. Draw with %%aigc_image -m "
            f"{result.name}" + (f" and a prompt naming a class ({', '.join(result.info.classes[:10])})."
                                if result.info.classes else "."))

    @no_var_expand
    @line_magic
    def aigc(self, line):
        """Manage jupyter-aigc: `%aigc help` lists the subcommands."""
        from .tasks.commands import run_command

        return self._run(lambda cancel: run_command(self.session, interpolate(line, self.shell.user_ns)))


class AwaitMagics:
    """Input transformer: a cell that starts with one of our cell magics, or is one of our line magics alone,
    awaits it (``AigcMagics.run_async``), so the kernel delivers Stop clicks and interrupts while it runs.
    The magic line is parsed the same way as in ``run_cell_magic`` / ``run_line_magic``."""

    CELL = "get_ipython().run_cell_magic("
    LINE = "get_ipython().run_line_magic("

    def __init__(self):
        self.cells = tuple(f"{self.CELL}'{name}', " for name in magic_names("cell"))
        # %aigc shows no widget and may ask for a key on stdin: it runs as a plain line magic
        self.lines = tuple(f"{self.LINE}'{name}', " for name in magic_names("line") if name != "aigc")

    def __call__(self, lines: list[str]) -> list[str]:
        if lines and lines[0].startswith(self.cells):
            return ["await get_ipython()._jupyter_aigc_magics.run_async(" + "".join(lines)[len(self.CELL):]]
        if len(lines) == 1 and lines[0].startswith(self.lines) and lines[0].rstrip().endswith(")"):
            return ["await get_ipython()._jupyter_aigc_magics.run_async(" + lines[0][len(self.LINE):]]
        return lines
