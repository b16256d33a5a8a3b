"""TeachingMagics: the teaching views' magics (%%aigc_attention, %%aigc_next, %%aigc_lens, %%aigc_tokens,
%%aigc_generate, %aigc_positional): each parses its options and shows the view that ``teaching`` builds."""

from __future__ import annotations

from IPython.core.magic import cell_magic, line_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import magic_arguments

from .core.errors import AigcError
from .core.template import interpolate
from .magics import MagicsBase, usage_error
from .options import declare
from .views import frontend


@magics_class
class TeachingMagics(MagicsBase):
    def _teaching(self, make, output: str | None, caption: str = "on") -> None:
        from IPython.display import display

        from .views.waiting import Waiting

        with Waiting("Computing the view (the first one in a kernel loads the model)",
                     shown=frontend(self.shell) == "jupyter"):
            view = make()
        if caption == "off":
            view.caption = ""
        if output:
            self._store(output, view)
        display(view)

    @magic_arguments()
    @declare("aigc_attention")
    @no_var_expand
    @cell_magic
    def aigc_attention(self, line, cell):
        """Show every layer's and head's softmax(QKᵀ/√dₖ) attention map of a local model for the cell text.

        The grid shows all heads (plus each layer's mean and the rollout); click one for its full map,
        hover a row to see where that token looks, or switch to the token-lines view. Example::

            %%aigc_attention --layers 0-3
            The cat sat on the mat because it was tired.
        """
        args = self._parse(self.aigc_attention, line)
        text = lambda: interpolate(cell.rstrip("\n"), self.shell.user_ns)  # noqa: E731
        if args.steps:
            from . import teaching

            make = lambda: teaching.attention_steps(text(), args.layer, args.head, args.query, args.model)  # noqa: E731
        else:
            make = lambda: self._attention_view(text(), args.model, args.layers, args.heads)  # noqa: E731
        return self._run(lambda cancel: self._teaching(make, args.output, args.caption))

    @magic_arguments()
    @declare("aigc_next")
    @no_var_expand
    @cell_magic
    def aigc_next(self, line, cell):
        """The next-token explorer: the model's probabilities for the token after the cell text.

        Sliders for temperature, top-k and top-p reshape the distribution in the browser; Greedy, Sample or
        a double click on a bar adds a token, and the path of chosen tokens grows. Example::

            %%aigc_next --temperature 0.7 --top-k 20
            The capital of France is
        """
        args = self._parse(self.aigc_next, line)
        from . import teaching

        make = lambda: teaching.next_token_view(  # noqa: E731
            interpolate(cell.rstrip("\n"), self.shell.user_ns), args.model, args.chat, args.temperature, args.top_k,
            args.top_p)
        return self._run(lambda cancel: self._teaching(make, args.output, args.caption))

    @magic_arguments()
    @declare("aigc_lens")
    @no_var_expand
    @cell_magic
    def aigc_lens(self, line, cell):
        """The logit lens: what each layer would predict for the next token, at every position. Example::

            %%aigc_lens
            The capital of France is
        """
        args = self._parse(self.aigc_lens, line)
        from . import teaching

        make = lambda: teaching.logit_lens(interpolate(cell.rstrip("\n"), self.shell.user_ns), args.model)  # noqa: E731
        return self._run(lambda cancel: self._teaching(make, args.output, args.caption))

    @magic_arguments()
    @declare("aigc_tokens")
    @no_var_expand
    @cell_magic
    def aigc_tokens(self, line, cell):
        """How the cell text becomes tokens: each piece with its id and bytes, and for a BPE tokenizer a word built
        from its bytes merge by merge (in the browser). --compare lines up other tokenizers; --train N instead
        trains a BPE of N tokens on the text, with a vocabulary-size slider. Examples::

            %%aigc_tokens --compare ./my-model --word tokenization
            Tokenization splits text into pieces.

            %%aigc_tokens --train 300 -o vocab
            The class's own text, a few paragraphs long.
        """
        args = self._parse(self.aigc_tokens, line)
        from . import teaching

        text = lambda: interpolate(cell.rstrip("\n"), self.shell.user_ns)  # noqa: E731
        if args.train is not None:
            if args.model or args.compare or args.word:
                raise usage_error(AigcError("--train builds its own tokenizer from the text.",
                                            "Drop -m, --compare and --word, or drop --train."))
            from .options import check

            make = lambda: teaching.train_tokenizer(text(), check("vocab_size", args.train, "--train"))  # noqa: E731
        else:
            make = lambda: teaching.tokens_view(text(), args.model, args.compare, args.word)  # noqa: E731
        return self._run(lambda cancel: self._teaching(make, args.output, args.caption))

    @magic_arguments()
    @declare("aigc_generate")
    @no_var_expand
    @cell_magic
    def aigc_generate(self, line, cell):
        """A whole generation, step by step: each step's top candidates and the token taken, the key/value cache
        (its bytes, and a step timed with and without it), and for beam search the tree of beams. Examples::

            %%aigc_generate --strategy beam --num-beams 3 --steps 8
            The capital of France is

            %%aigc_generate --compare greedy,sample,beam --seed 1
            Once upon a time
        """
        args = self._parse(self.aigc_generate, line)
        from . import teaching

        def make(cancel):
            return teaching.generation_trace(
                interpolate(cell.rstrip("\n"), self.shell.user_ns), args.strategy, args.steps, args.num_beams,
                args.temperature, args.top_k, args.top_p, args.seed, args.compare, args.model, args.chat, cancel=cancel)

        return self._run(lambda cancel: self._teaching(lambda: make(cancel), args.output, args.caption))

    @magic_arguments()
    @declare("aigc_positional")
    @no_var_expand
    @line_magic
    def aigc_positional(self, line):
        """Positional encoding: PE(pos, 2i) = sin(pos/10000^(2i/d)), PE(pos, 2i+1) = cos(…), the similarity of
        positions, and with -m a model's rotary encoding on its own numbers. Example::

            %aigc_positional --d-model 64 --positions 128 -m SmolLM2-135M-Instruct
        """
        args = self._parse(self.aigc_positional, line)
        from . import teaching

        make = lambda: teaching.positional_encoding(args.d_model, args.positions, args.model)  # noqa: E731
        return self._run(lambda cancel: self._teaching(make, args.output, args.caption))
