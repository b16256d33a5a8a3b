"""How text becomes tokens: a model's own tokenizer, its BPE merges worked through, and a small BPE trained here.

Only the tokenizer is loaded, never the weights: a GGUF model (the default) reads it from its transformers copy
when that exists, else from the GGUF's metadata. Every number comes from ``transformers``/``tokenizers``:
the ids are ``tokenizer.encode``, the words are the tokenizer's own pre-tokens, and each merge step is the
``tokenizers`` BPE model given the merges up to that step. The browser repeats the steps itself from the
same merge list (so a click needs no kernel), and the tests hold it to these numbers.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..core.convert import made_copy
from ..core.errors import AigcError

MAX_TOKENS = 4000       # tokens a view shows
MAX_WORDS = 400         # distinct words whose merges travel to the browser
MAX_TEXT = 200_000      # characters a tokenizer is trained on
BYTE = re.compile(r"<0x([0-9A-Fa-f]{2})>")
_loaded: dict[str, "Tokenizer"] = {}


def shown(data: bytes) -> str:
    """Bytes as text: UTF-8 where they are whole characters, ``\\xNN`` for the part of a character."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("utf-8", "backslashreplace")


def byte_of() -> dict[str, int]:
    """GPT-2's byte-level alphabet: the printable character that stands for each byte."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return {char: byte for byte, char in bytes_to_unicode().items()}


@dataclass
class Tokenizer:
    """A model's tokenizer (transformers) and what its tokenizer.json says about the BPE inside."""

    name: str
    tokenizer: object
    _spec: dict | None = field(default=None, repr=False)
    _products: dict | None = field(default=None, repr=False)

    @property
    def spec(self) -> dict:
        if self._spec is None:
            backend = getattr(self.tokenizer, "backend_tokenizer", None)
            self._spec = json.loads(backend.to_str()) if backend is not None else {}
        return self._spec

    @property
    def kind(self) -> str:
        return (self.spec.get("model") or {}).get("type") or type(self.tokenizer).__name__

    @property
    def byte_level(self) -> bool:
        return "ByteLevel" in json.dumps(self.spec.get("decoder"))

    @property
    def merges(self) -> list[tuple[str, str]] | None:
        """The merge list in rank order (both tokenizer.json forms: ``["a", "b"]`` and ``"a b"``), or None."""
        model = self.spec.get("model") or {}
        if model.get("type") != "BPE" or model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
            return None
        return [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in model.get("merges") or []]

    @property
    def products(self) -> dict[str, list[int]]:
        """Each merged token → the ranks of the merges that make it."""
        if self._products is None:
            self._products = {}
            for rank, (left, right) in enumerate(self.merges or []):
                self._products.setdefault(left + right, []).append(rank)
        return self._products


def load_tokenizer(session, model: str | None) -> Tokenizer:
    """The tokenizer of ``model`` (a name as typed, None for the default), without its weights."""
    ref = session.resolve(model)
    ref = ref.base or ref
    if ref.engine not in ("transformers", "llama.cpp"):
        raise AigcError(f"{ref.name} is served by {ref.engine}: its tokenizer is not on this machine.",
                        "Use a local model: a folder, a .gguf file or a Hub id.")
    source, gguf = ref.source, None
    if ref.gguf:
        copy = made_copy(Path(ref.gguf))
        source, gguf = (str(copy), None) if copy else (str(Path(ref.gguf).parent), Path(ref.gguf).name)
    key = f"{source}|{gguf}"
    if key not in _loaded:
        _loaded[key] = Tokenizer(ref.name, _read(source, gguf))
        while len(_loaded) > 4:
            _loaded.pop(next(iter(_loaded)))
    found = _loaded[key]
    return found if found.name == ref.name else Tokenizer(ref.name, found.tokenizer, found._spec, found._products)


def _read(source: str, gguf: str | None):
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    extra = {"gguf_file": gguf} if gguf else {}
    try:
        try:
            return AutoTokenizer.from_pretrained(source, local_files_only=True, **extra)
        except OSError:
            if Path(source).is_dir():
                raise
            return AutoTokenizer.from_pretrained(source)
    except Exception as exc:
        first = (str(exc).splitlines() or [""])[0]
        raise AigcError(f"Could not load the tokenizer of '{source}': {type(exc).__name__}: {first}",
                        "Give a local model folder with tokenizer files, a .gguf file, or a Hub id already "
                        "downloaded.") from None


@dataclass
class Tokenization:
    """``text`` through one tokenizer: ``ids`` (= ``tokenizer.encode``), each token's own string, the text it
    stands for and the bytes behind it, and which pre-token (word) each came from (None: a special token)."""

    model: str
    text: str
    ids: list[int]
    tokens: list[str]
    pieces: list[str]
    bytes: list[bytes]
    special: list[bool]
    words: list[int | None]
    vocab_size: int
    kind: str

    def __len__(self) -> int:
        return len(self.ids)


def tokenize(tok: Tokenizer, text: str) -> Tokenization:
    if not text:
        raise AigcError("There is no text to split into tokens.", "Write the text in the cell body.")
    tokenizer = tok.tokenizer
    ids = list(tokenizer.encode(text))
    if len(ids) > MAX_TOKENS:
        raise AigcError(f"The text is {len(ids)} tokens with {tok.name}; the view shows {MAX_TOKENS} at most.",
                        "Shorten the text.")
    fast = getattr(tokenizer, "is_fast", False)
    encoded = tokenizer(text, return_offsets_mapping=fast, return_special_tokens_mask=True)
    if list(encoded["input_ids"]) != ids:
        raise AigcError(f"{tok.name}'s tokenizer gives different ids for encode and __call__.", "")
    offsets = encoded["offset_mapping"] if fast else [(0, 0)] * len(ids)
    special = [bool(s) for s in encoded["special_tokens_mask"]]
    words = encoded.word_ids() if fast else list(range(len(ids)))
    tokens = tokenizer.convert_ids_to_tokens(ids)
    table = byte_of() if tok.byte_level else None
    data = []
    for token, is_special, (start, end) in zip(tokens, special, offsets):
        byte = BYTE.fullmatch(token)
        if is_special:
            data.append(token.encode())
        elif table is not None and all(c in table for c in token):
            data.append(bytes(table[c] for c in token))
        elif byte:
            data.append(bytes([int(byte.group(1), 16)]))
        elif fast:
            data.append(text[start:end].encode())
        else:
            data.append(tokenizer.convert_tokens_to_string([token]).encode())
    return Tokenization(tok.name, text, ids, tokens, [shown(b) for b in data], data, special,
                        [None if s else w for s, w in zip(special, words)], len(tokenizer), tok.kind)


@dataclass
class Word:
    """One pre-token of the text: its tokens ``first:last`` and, put together, the string BPE starts from."""

    text: str
    piece: str
    first: int
    last: int


def words_of(tokens: Tokenization) -> list[Word]:
    """The text's words as the tokenizer splits them before BPE (its pre-tokens), in order."""
    found, index = [], 0
    while index < len(tokens):
        word, end = tokens.words[index], index + 1
        while word is not None and end < len(tokens) and tokens.words[end] == word:
            end += 1
        if word is not None:
            found.append(Word(shown(b"".join(tokens.bytes[index:end])), "".join(tokens.tokens[index:end]), index, end))
        index = end
    return found


@dataclass
class MergeSteps:
    """BPE building one word: ``states[0]`` its symbols (bytes), each later state after one more merge rule
    (``merges[i]``: left, right, rank; applied everywhere it fits), ``ids`` those of the last state."""

    word: str
    piece: str
    states: list[list[str]]
    merges: list[tuple[str, str, int]]
    ids: list[int]
    shown: dict[str, str]


def relevant_ranks(tok: Tokenizer, piece: str) -> list[int]:
    """The ranks of the merges that could fire inside ``piece``: those whose result is a part of it."""
    ranks = set()
    for start in range(len(piece)):
        for end in range(start + 2, len(piece) + 1):
            ranks.update(tok.products.get(piece[start:end], ()))
    return sorted(ranks)


def merge_steps(tok: Tokenizer, word: Word) -> MergeSteps:
    """Each state is what the ``tokenizers`` BPE model gives with the merges up to that rank (the relevant
    ones: a merge whose result is not part of the word never fires in it)."""
    from tokenizers import models

    merges, vocab, spec = tok.merges, tok.tokenizer.get_vocab(), tok.spec["model"]
    ranks = relevant_ranks(tok, word.piece)
    symbols = {c for c in word.piece} | {s for r in ranks for s in (*merges[r], "".join(merges[r]))}
    missing = [s for s in symbols if s not in vocab]
    if missing:
        raise AigcError(f"{word.text!r} has symbols outside {tok.name}'s vocabulary ({missing[0]!r}).",
                        "Choose another word.")
    ignore = bool(spec.get("ignore_merges"))
    if ignore and word.piece in vocab:
        symbols.add(word.piece)
    sub = {s: vocab[s] for s in symbols}
    states, applied = [list(word.piece)], []
    for count in range(len(ranks) + 1):
        model = models.BPE(vocab=sub, merges=[merges[r] for r in ranks[:count]], ignore_merges=ignore)
        state = [t.value for t in model.tokenize(word.piece)]
        if state != states[-1]:
            rank = ranks[count - 1] if count else -1
            states.append(state)
            applied.append((*merges[rank], rank) if count else ("", "", -1))
    table = byte_of() if tok.byte_level else {}
    show = {s: shown(bytes(table[c] for c in s)) if table and all(c in table for c in s) else s for s in symbols}
    return MergeSteps(word.text, word.piece, states, applied, [vocab[s] for s in states[-1]], show)


def pick_word(words: list[Word], word: str | None) -> int:
    """The index of ``word`` among the text's words (spaces around it ignored); None: the longest."""
    if not words:
        raise AigcError("The text has no word for BPE to build.", "Write some words in the cell body.")
    if word is None:
        return max(range(len(words)), key=lambda i: (len(words[i].piece), -i))
    wanted = word.strip()
    for index, candidate in enumerate(words):
        if candidate.text.strip() == wanted and wanted:
            return index
    examples = ", ".join(repr(w.text.strip()) for w in words[:5] if w.text.strip())
    raise AigcError(f"No word of the text is {word!r}.", f"Give a whole word of the text, e.g. {examples}.")


def browser_merges(tok: Tokenizer, words: list[Word], first: Word) -> dict:
    """What the browser needs to build the text's words (``first`` and up to ``MAX_WORDS`` distinct ones): the
    merges that can fire in them (with their ranks), and each symbol's id and text."""
    merges, vocab = tok.merges, tok.tokenizer.get_vocab()
    pieces = list(dict.fromkeys([first.piece] + [w.piece for w in words]))[:MAX_WORDS]
    ranks = sorted({r for piece in pieces for r in relevant_ranks(tok, piece)})
    symbols = {c for p in pieces for c in p} | {s for r in ranks for s in (*merges[r], "".join(merges[r]))}
    ignore = bool(tok.spec["model"].get("ignore_merges"))
    if ignore:
        symbols |= {p for p in pieces if p in vocab}
    table = byte_of() if tok.byte_level else {}
    info = {s: [vocab.get(s, -1), shown(bytes(table[c] for c in s)) if table and all(c in table for c in s) else s]
            for s in symbols}
    return {"merges": [[*merges[r], r] for r in ranks], "symbols": info, "pieces": pieces,
            "ignore_merges": ignore, "total": len(merges)}


@dataclass
class TrainedBpe:
    """A byte-level BPE trained on ``text`` with ``tokenizers``' BpeTrainer: ``alphabet`` the base symbols (the
    bytes of the text), then one new token per merge, in the order learned."""

    tokenizer: object
    text: str
    alphabet: list[str]
    merges: list[tuple[str, str]]
    vocab: dict[str, int]
    requested: int

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def model(self, vocab_size: int | None = None):
        """A ``tokenizers.Tokenizer`` with the first ``vocab_size − len(alphabet)`` merges only."""
        from tokenizers import Tokenizer as Backend
        from tokenizers import decoders, models

        size = self.vocab_size if vocab_size is None else self.check_size(vocab_size)
        backend = Backend(models.BPE(vocab=self.vocab, merges=self.merges[:size - len(self.alphabet)]))
        backend.pre_tokenizer = self.tokenizer.pre_tokenizer
        backend.decoder = decoders.ByteLevel()
        return backend

    def check_size(self, vocab_size: int) -> int:
        if not len(self.alphabet) <= vocab_size <= self.vocab_size:
            raise AigcError(f"vocab_size {vocab_size} is outside this vocabulary's sizes.",
                            f"Give {len(self.alphabet)} (the bytes alone) to {self.vocab_size} (every merge).")
        return int(vocab_size)

    def tokens(self, vocab_size: int | None = None) -> list[str]:
        """The text's tokens (the byte-level strings) with a vocabulary of ``vocab_size``."""
        return self.model(vocab_size).encode(self.text).tokens

    def ids(self, vocab_size: int | None = None) -> list[int]:
        return self.model(vocab_size).encode(self.text).ids

    def pieces(self) -> list[str]:
        """The text's pre-tokens (byte-level strings), in order: what BPE works on."""
        return [piece for piece, _ in self.tokenizer.pre_tokenizer.pre_tokenize_str(self.text)]

    def shown(self) -> dict[str, str]:
        table = byte_of()
        return {s: shown(bytes(table[c] for c in s)) for s in self.vocab}


def train_bpe(texts, vocab_size: int) -> TrainedBpe:
    """Train a byte-level BPE of at most ``vocab_size`` tokens on ``texts`` (a string or a list of strings).
    It starts from the bytes the text uses; it stops early when no pair of tokens is left to merge."""
    from tokenizers import Tokenizer as Backend
    from tokenizers import decoders, models, pre_tokenizers, trainers

    from ..options import check

    texts = [texts] if isinstance(texts, str) else [str(t) for t in (texts or [])]
    text = "\n".join(texts)
    if not text.strip():
        raise AigcError("There is no text to build a vocabulary from.", "Give the class's text (a string or a list).")
    if len(text) > MAX_TEXT:
        raise AigcError(f"The text is {len(text):,} characters; the view trains on {MAX_TEXT:,} at most.",
                        "Give a shorter text.")
    vocab_size = check("vocab_size", vocab_size, "vocab_size")
    backend = Backend(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    alphabet = sorted({c for piece, _ in backend.pre_tokenizer.pre_tokenize_str(text) for c in piece})
    if vocab_size <= len(alphabet):
        raise AigcError(f"A vocabulary of {vocab_size} tokens leaves no room for merges: the text uses "
                        f"{len(alphabet)} different bytes, and the vocabulary starts with them.",
                        f"Ask for more than {len(alphabet)} tokens.")
    backend.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False))
    spec = json.loads(backend.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in spec["merges"]]
    vocab = spec["vocab"]
    base = sorted((s for s in vocab if vocab[s] < len(vocab) - len(merges)), key=vocab.get)
    return TrainedBpe(backend, text, base, merges, vocab, vocab_size)
