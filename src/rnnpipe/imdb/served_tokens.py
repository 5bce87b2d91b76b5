"""Word ids of a few reviews, fast: what the served model needs on each request.

words.encode_texts runs three RE2 regex replacements through Arrow, and Arrow compiles each
pattern on every call: for one review of ~1,000 characters that is ~10 ms (4.6 + 2.6 + 3.0) of
its ~10.5 ms, ~40% of a one-review request's p50 (~24 ms). Its id lookup also builds a hash set
of the whole vocabulary (20,000 tokens, ~1 ms) on every call. ServedEncoder compiles the
regexes once (Python's `re`) and builds its vocabulary dict once; a batch of BATCH reviews or
more goes to words.encode_texts, where the compiling is amortised.

The tokens come from words' own code (words._tokenize_chunk, run with the regex kernel swapped
for Python's `re`), so a change to words' rules changes them too. Python's `re` has no \\p{..}
classes, and its \\s and $ differ from RE2's, so each class is spelled out as the code point
ranges that Arrow's RE2 reports for words' class (once, on a string of every code point: ~0.3 s,
on first use): equal whatever Unicode versions Python and RE2 carry (Python 3.11's Unicode 14
and Arrow 25's RE2 disagree on 5,052 code points). tests/test_served_tokens.py proves it equal
to words.encode_texts, every code point included.
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable, Iterable
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rnnpipe.core.vocab import Vocabulary
from rnnpipe.imdb import words

BATCH = 128  # reviews from which words.encode_texts is used (faster from ~170 of 1,300 chars)


def _outside(pattern: str) -> list[tuple[int, int]]:
    """The ranges of code points that the RE2 character class `pattern` does not match."""
    every = np.r_[0:0xD800, 0xE000:0x110000].astype("<u4")  # all but the surrogates
    text = pa.array([every.tobytes().decode("utf-32-le")])
    pieces = pc.split_pattern_regex(text, pattern=pattern + "+").flatten().to_pylist()
    # a piece may span the surrogates: harmless, Arrow strings never hold one
    return [(ord(p[0]), ord(p[-1])) for p in pieces if p]


def _one_of(ranges: list[tuple[int, int]]) -> str:
    """A Python pattern for one character in `ranges`. sre tests a BMP class with a bitmap, but
    astral ranges one by one, so these are tested for astral characters only (one class of all
    made English ~10x slower), the widest (the unassigned planes) first."""

    def chars(rs):
        return "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in rs)

    bmp = chars((a, min(b, 0xFFFF)) for a, b in ranges if a <= 0xFFFF)
    astral = sorted(
        ((max(a, 0x10000), b) for a, b in ranges if b > 0xFFFF), key=lambda r: r[0] - r[1]
    )
    return rf"(?:[{bmp}]|[\U00010000-\U0010FFFF](?<=[{chars(astral)}]))"


@cache
def _regexes() -> tuple[re.Pattern, re.Pattern, re.Pattern]:
    # words._REGEX's patterns with RE2's classes as Python ones, and \Z for RE2's $ (Python's $
    # also matches before a final newline)
    punct = _one_of(_outside(rf"[{words._WORD}\s\pZ']"))
    other = _one_of(_outside(rf"[{words._WORD}]"))
    return (
        re.compile(f"({punct})"),
        # (?=(?s:.)') only spares the class test where no apostrophe follows
        re.compile(rf"(^|(?=(?s:.)'){other})'"),
        re.compile(rf"'({other}|\Z)"),
    )


def _replacements() -> dict[tuple[str, str], Callable[[str], str]]:
    """words._REGEX's replacements, keyed by (pattern, replacement). Not re.sub: before 3.12,
    Python expands a template with groups in Python, ~1 us a match; split + join gives the same
    string."""
    punct, before, after = _regexes()

    def spaced(text: str) -> str:  # c -> " c "
        return " ".join(punct.split(text))

    def after_word(text: str) -> str:  # "x'" -> "x ' "
        parts = before.split(text)  # text, group, text, ...
        return " ' ".join([t + g for t, g in zip(parts[::2], [*parts[1::2], ""], strict=True)])

    def before_word(text: str) -> str:  # "'x" -> " ' x"
        parts = after.split(text)
        return " ' ".join([g + t for g, t in zip(["", *parts[1::2]], parts[::2], strict=True)])

    return dict(zip(words._REGEX, (spaced, after_word, before_word), strict=True))


class _Kernels:
    """pyarrow.compute as words' tokenizer sees it here: the same kernels, except that its regex
    replacements run as Python regexes compiled once. A pattern it does not know (words.py
    changed) goes to Arrow: slower, the same tokens."""

    def __getattr__(self, name: str):
        return getattr(pc, name)

    @staticmethod
    def replace_substring_regex(arr: pa.Array, pattern: str, replacement: str) -> pa.Array:
        replace = _replacements().get((pattern, replacement))
        if replace is None:
            return pc.replace_substring_regex(arr, pattern=pattern, replacement=replacement)
        return pa.array([s if s is None else replace(s) for s in arr.to_pylist()], arr.type)


# words._tokenize_chunk itself (its code, so any change to words' rules is a change here too),
# run with the kernels above
_tokenize_chunk = types.FunctionType(
    words._tokenize_chunk.__code__, {**vars(words), "pc": _Kernels()}, "_tokenize_chunk"
)


def tokenize_array(texts: list[str]) -> pa.ListArray:
    """words.tokenize_array(texts), with the regexes in Python."""
    return _tokenize_chunk(pa.array(texts, pa.string()))


class ServedEncoder:
    """words.encode_texts(texts, vocab, max_len, truncate) as `encode(texts)`, fast for a few."""

    def __init__(self, vocab: Vocabulary, max_len: int, truncate: str = "end"):
        if truncate not in ("start", "end"):
            raise ValueError(f"truncate must be 'start' or 'end', got {truncate!r}")
        self.vocab, self.max_len, self.truncate = vocab, max_len, truncate
        # the first id of a token, as pc.index_in gives
        self.index = {t: i for i, t in reversed(list(enumerate(vocab.tokens)))}
        _regexes()  # compiled now, not on the first request

    def tokens(self, texts: Iterable[str]) -> list[list[str]]:
        return [t or [] for t in tokenize_array(list(texts)).to_pylist()]

    def encode(self, texts: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
        """ids int32 [n, max_len] and lengths int32 [n], as words.encode_texts."""
        texts = list(texts)
        vocab, max_len = self.vocab, self.max_len
        if not 0 < len(texts) < BATCH:
            return words.encode_texts(texts, vocab, max_len, self.truncate)
        tokens = tokenize_array(texts)
        get, oov = self.index.get, vocab.oov_id
        # words.encode_tokens from here on, with the ids from the dict
        flat = np.array([*(get(t, oov) for t in tokens.values.to_pylist()), vocab.pad_id])
        offsets = tokens.offsets.to_numpy()
        full = np.diff(offsets)
        kept = np.minimum(full, max_len)
        first = offsets[:-1] - offsets[0] + (full - kept if self.truncate == "end" else 0)
        col = np.arange(max_len)
        index = np.where(col < kept[:, None], first[:, None] + col, len(flat) - 1)
        return flat[index].astype(np.int32), kept.astype(np.int32)
