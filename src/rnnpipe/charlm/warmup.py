"""The char LM's learning-rate schedule: the rate of each epoch (lr_decay), with a linear
warm-up over the start of the first epoch (charlm.train.warmup).

Without a warm-up the two-layer GRU's first steps at the full rate can leave it far behind
(seed 7 of the default: validation loss 1.94 after its first epoch against 1.66 and 1.70 for
seeds 42 and 123, and still behind after ten; benchmarks/README.md). Imports Keras: import it
inside the stage functions, as `rnnpipe.core.training`."""

from __future__ import annotations

from rnnpipe.core import training


class WarmUp(training.EpochDecay):
    """EpochDecay's rate for each epoch, except the first `batches` batches of the first
    epoch: batch b (from 0) gets the rate x (b + 1) / batches."""

    def __init__(self, base: float, decay: float, batches: int):
        super().__init__(base, decay)
        self.batches, self.epoch = batches, 0

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.epoch == 0 and batch <= self.batches:
            rate = self.base  # x decay^0
            if batch < self.batches:
                rate = rate * (batch + 1) / self.batches
            self.model.optimizer.learning_rate = rate


def warmup_batches(share: float, batches: int) -> int:
    """The warm-up's length in batches: `share` of an epoch of `batches`, at least one when
    share is above 0."""
    return max(1, round(share * batches)) if share > 0 else 0


def schedule(hp: dict, share: float, batches: int) -> list:
    """The callbacks of the rate schedule: train's (and the compare rows') epochs of `batches`
    batches, warming up over `share` of the first (0: none, as `training.schedule`)."""
    n = warmup_batches(share, batches)
    if n == 0:
        return training.schedule(hp)
    return [WarmUp(hp["learning_rate"], hp.get("lr_decay", 1.0), n)]
