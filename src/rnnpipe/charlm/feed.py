"""How the char LM reads the training text, shared by the tune and train stages: the feed
(`charlm.train.feed`) decides the batches, the model's statefulness and the callbacks."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rnnpipe.charlm import model as charlm
from rnnpipe.core.errors import PipelineError


def load_ids(path) -> np.ndarray:
    try:
        with np.load(path) as d:
            return d["ids"].astype(np.int32)
    except (OSError, KeyError, ValueError) as e:
        raise PipelineError(f"cannot read encoded text {path}: {e}") from None


@dataclass
class Feed:
    fit_kwargs: dict  # x, y, validation_data, batch_size, shuffle for model.fit
    stateful: bool
    batch_size: int
    callbacks: list = field(default_factory=list)

    def build(self, hp: dict, vocab_size: int):
        # a Transformer carries no state: it reads each window of the streams on its own
        stateful = self.stateful and hp["cell"] != "Transformer"
        return charlm.build_char_lm(
            hp, vocab_size, stateful=stateful, batch_size=self.batch_size if stateful else None
        )


def make_feed(
    train_ids: np.ndarray, valid_ids: np.ndarray, feed: str, batch_size: int, seq_length: int
) -> Feed:
    """tbptt: `batch_size` contiguous streams fed in order to a stateful model, state reset
    each epoch; windows: the textbook's independent windows, shuffled."""
    if feed == "tbptt":
        x, y = charlm.stream_batches(train_ids, batch_size, seq_length)
        xv, yv = charlm.stream_batches(valid_ids, batch_size, seq_length)
        return Feed(
            {
                "x": x,
                "y": y,
                "validation_data": (xv, yv),
                "batch_size": batch_size,
                "shuffle": False,
            },
            True,
            batch_size,
            [charlm.ResetStates()],
        )
    x, y = charlm.window_batches(train_ids, seq_length)
    xv, yv = charlm.window_batches(valid_ids, seq_length)
    return Feed(
        {"x": x, "y": y, "validation_data": (xv, yv), "batch_size": batch_size, "shuffle": True},
        False,
        batch_size,
    )
