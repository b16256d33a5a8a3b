"""AigcMagics: the magics' declarations and option parsing; the work is done elsewhere."""

from __future__ import annotations

import sys

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from .errors import AigcError
from .keys import redact


def sampling_options(func):
    """The model, server and sampling options of %%gpt, declared in one place."""
    options = [
        argument("-m", "--model", help="Model: local folder, .gguf file, Hub id, 'openai:MODEL' or alias."),
        argument("--base-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1."),
        argument("--key-env", help="Name of the environment variable that holds the API key."),
        argument("--max-tokens", type=int, help="Maximum new tokens (default from AigcConfig.max_tokens)."),
        argument("--temperature", help="Sampling temperature, 0 = greedy; a comma list compares settings."),
        argument("--top-p", help="Nucleus sampling mass in (0, 1]; a comma list compares settings."),
        argument("--seed", help="Random seed for reproducible sampling; a comma list compares seeds."),
        argument("--stop", action="append", default=[], help="Stop sequence (repeat for several)."),
        argument("-n", type=int, default=1, help="Number of completions, shown side by side."),
        argument("--system", help="System prompt for this conversation."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def parse_argstring(magic, line: str):
    """Parse a magic's options the way a shell would: quotes group words and are removed."""
    import shlex

    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise AigcError(f"Cannot read the options: {exc}.", "Close every quote you open.") from None
    return magic.parser.parse_args(words)


def report(error: AigcError) -> None:
    """A user's mistake: one short message in the cell, no traceback."""
    print(redact(f"jupyter-aigc: {error}"), file=sys.stderr)


@magics_class
class AigcMagics(Magics):
    """%%gpt, %%aigc_image, %%aigc_attention and %aigc."""

    def __init__(self, shell, session):
        super().__init__(shell)
        self.session = session

    @magic_arguments()
    @sampling_options
    @argument("--compare", help="Comma-separated models to run side by side, e.g. 'm1,openai:gpt-4o-mini'.")
    @argument("--logprobs", action="store_true", help="Colour tokens by probability; hover shows alternatives.")
    @argument("-o", "--output", help="Store the answer (a list for several) in this variable.")
    @argument("--no-stream", action="store_true", help="Show the answer only when it is complete.")
    @argument("--new", action="store_true", help="Start a new conversation with this cell.")
    @argument("--raw", action="store_true", help="Plain completion: no chat template, no memory.")
    @argument("--attention", action="store_true", help="Then show the attention view of prompt + answer.")
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
        """
        try:
            args = parse_argstring(self.gpt, line)
            self.session.gpt(args, cell)
        except AigcError as error:
            report(error)

    async def gpt_async(self, line: str, cell: str) -> None:
        """%%gpt for kernels that serve widget messages while a cell awaits (ipykernel ≥ 7.4).

        The work runs in a thread while the cell awaits it, so Stop and the controls answer at once;
        a kernel interrupt cancels the await, which stops generation and keeps the partial answer.
        """
        import asyncio
        import threading

        cancel = threading.Event()

        def work():
            try:
                self.session.gpt(parse_argstring(self.gpt, line), cell, cancel)
            except AigcError as error:
                report(error)

        job = asyncio.ensure_future(asyncio.to_thread(work))
        try:
            while not job.done():  # wake the loop often: ipykernel turns SIGINT into a cancel only then
                await asyncio.wait({job}, timeout=0.1)
        except (asyncio.CancelledError, KeyboardInterrupt):
            cancel.set()
            await asyncio.wait({job})

    @magic_arguments()
    @argument("-m", "--model", help="Local model (default: AigcConfig.default_model).")
    @argument("--layers", help="Layers to show, e.g. '0-5' or '0,3,7' (default: all).")
    @argument("--heads", help="Heads to show, e.g. '0-2' (default: all).")
    @argument("-o", "--output", help="Store the AttentionView in this variable (.arrays() gives numpy).")
    @cell_magic
    def aigc_attention(self, line, cell):
        """Show every layer's and head's softmax(QKᵀ/√dₖ) attention map of a local model for the cell text.

        The grid shows all heads (plus each layer's mean and the rollout); click one for its full map,
        hover a row to see where that token looks, or switch to the token-lines view. Example::

            %%aigc_attention --layers 0-3
            The cat sat on the mat because it was tired.
        """
        try:
            args = parse_argstring(self.aigc_attention, line)
            self.session.attention(args, cell)
        except AigcError as error:
            report(error)

    @magic_arguments()
    @argument("-m", "--model", help="diffusers folder, Hub id or 'openai:gpt-image-1' (default: AigcConfig).")
    @argument("--size", default="512x512", help="Image size WIDTHxHEIGHT (default 512x512).")
    @argument("--steps", type=int, default=25, help="Denoising steps for local pipelines (default 25).")
    @argument("--guidance", type=float, default=7.5, help="Classifier-free guidance scale (default 7.5).")
    @argument("--seed", type=int, help="Seed; image i uses seed + i. Same seed and settings, same image.")
    @argument("-n", type=int, default=1, help="Number of images (default 1).")
    @argument("--negative", help="Negative prompt (local pipelines).")
    @argument("--key-env", help="Name of the environment variable that holds the API key.")
    @argument("-o", "--output", help="Store the list of PIL images in this variable.")
    @argument("--save", help="Folder for PNGs whose metadata holds prompt, model, seed and steps.")
    @cell_magic
    def aigc_image(self, line, cell):
        """Turn the cell body into images, from a local diffusers pipeline or the OpenAI Images API.

        Example::

            %%aigc_image -m ./my-sd-pipeline --size 512x512 --steps 20 --seed 1 -n 2 -o images
            A lighthouse at dusk, watercolour.
        """
        try:
            self.session.image(parse_argstring(self.aigc_image, line), cell)
        except AigcError as error:
            report(error)

    @line_magic
    def aigc(self, line):
        """Manage jupyter-aigc: `%aigc help` lists the subcommands."""
        try:
            self.session.command(line)
        except AigcError as error:
            report(error)
