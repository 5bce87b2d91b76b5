"""A vocabulary: tokens in id order, saved as JSON (never a pickle).

Word vocabularies reserve id 0 for padding and id 1 for out-of-vocabulary tokens; character
vocabularies have no padding and reserve id 0 for characters never seen in training.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rnnpipe.core.atomic import write_json
from rnnpipe.core.errors import PipelineError

PAD, OOV, UNK = "<pad>", "<oov>", "<unk>"


@dataclass(frozen=True)
class Vocabulary:
    kind: str  # "word" or "char"
    tokens: tuple[str, ...]  # the token of each id
    pad_id: int | None
    oov_id: int

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def index(self) -> dict[str, int]:
        # built on each access: vocabularies are small and callers keep it in a local
        return {t: i for i, t in enumerate(self.tokens)}

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "pad_id": self.pad_id,
            "oov_id": self.oov_id,
            "size": len(self.tokens),
            "tokens": list(self.tokens),
        }

    def save(self, path: str | Path) -> None:
        write_json(path, self.to_json())

    @classmethod
    def from_json(cls, d: dict) -> Vocabulary:
        try:
            vocab = cls(d["kind"], tuple(d["tokens"]), d["pad_id"], d["oov_id"])
        except (KeyError, TypeError) as e:
            raise PipelineError(f"not a vocabulary: missing or bad field {e}") from None
        if len(set(vocab.tokens)) != len(vocab.tokens):
            raise PipelineError("not a vocabulary: duplicate tokens")
        return vocab

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        try:
            return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as e:
            raise PipelineError(f"cannot read vocabulary {path}: {e}") from None


def word_vocabulary(counts: Counter, max_tokens: int, min_count: int) -> Vocabulary:
    """The most frequent words (ties broken alphabetically, so ids are stable), at most
    `max_tokens` ids including padding and OOV, each seen at least `min_count` times."""
    ranked = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    return Vocabulary("word", (PAD, OOV, *ranked[: max_tokens - 2]), pad_id=0, oov_id=1)


def char_vocabulary(text: str) -> Vocabulary:
    """Every character of `text`, sorted, after id 0 for unseen characters."""
    return Vocabulary("char", (UNK, *sorted(set(text))), pad_id=None, oov_id=0)
