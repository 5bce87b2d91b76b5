"""Characters <-> ids, and the positional train/valid/test split of the novel."""

from __future__ import annotations

import numpy as np

from rnnpipe.core.errors import PipelineError
from rnnpipe.core.vocab import Vocabulary


def train_part(text: str, train_fraction: float) -> str:
    """The first `train_fraction` of the characters: the only text the vocabulary may see."""
    return text[: int(len(text) * train_fraction)]


def encode(text: str, vocab: Vocabulary) -> np.ndarray:
    """int32 ids of each character; a character not in `vocab` gets its oov id."""
    index = vocab.index
    return np.array([index.get(c, vocab.oov_id) for c in text], dtype=np.int32)


def decode(ids, vocab: Vocabulary) -> str:
    return "".join(vocab.tokens[int(i)] for i in ids)


def split_by_position(
    n: int, train_fraction: float, valid_fraction: float
) -> dict[str, tuple[int, int]]:
    """[start, stop) of train, valid, test: contiguous, in this order, covering 0..n."""
    a = int(n * train_fraction)
    b = int(n * (train_fraction + valid_fraction))
    bounds = {"train": (0, a), "valid": (a, b), "test": (b, n)}
    empty = [k for k, (s, e) in bounds.items() if e <= s]
    if empty:
        raise PipelineError(f"corpus of {n} characters is too short: empty {', '.join(empty)} part")
    return bounds
