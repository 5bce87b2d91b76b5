"""The sentiment model's input pipeline: encoded splits read from .npz, batched by tf.data."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnpipe.core.errors import PipelineError


def read_split(folder: Path, split: str) -> dict[str, np.ndarray]:
    path = Path(folder) / f"{split}.npz"
    try:
        with np.load(path) as z:
            return {k: z[k] for k in ("ids", "lengths", "labels")}
    except (OSError, KeyError, ValueError) as e:
        raise PipelineError(f"cannot read encoded split {path}: {e}") from None


def dataset(split: dict, batch_size: int, max_len: int, seed: int | None = None):
    """Batches of similar length (tf.data bucketing): each batch is padded only to its longest
    review. `seed` shuffles (training); None keeps the order of buckets as they fill.

    The shuffled order of an epoch is a function of (seed, epoch) alone, so a resumed run sees
    the same batches as an uninterrupted one: the dataset has a `set_epoch(epoch)` method, which
    `rnnpipe.core.training.fit` calls before each epoch (0 until then).
    """
    import tensorflow as tf

    ids = tf.constant(split["ids"])
    lengths = tf.constant(split["lengths"])
    labels = tf.constant(split["labels"].astype("float32")[:, None])
    rows = tf.data.Dataset.range(len(split["ids"]))
    epoch = None
    if seed is not None:
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False)

        def permutation(_):
            # read when an epoch's iterator starts, so after set_epoch
            seeds = tf.stack([tf.constant(seed, tf.int64), epoch.read_value()])
            return tf.data.Dataset.from_tensor_slices(
                tf.random.experimental.stateless_shuffle(
                    tf.range(len(split["ids"]), dtype=tf.int64), seeds
                )
            )

        rows = tf.data.Dataset.from_tensors(0).flat_map(permutation)
    ds = rows.map(
        lambda i: (ids[i][: tf.maximum(lengths[i], 1)], labels[i]),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    step = max(max_len // 8, 1)
    boundaries = list(range(step, max_len, step))
    ds = ds.bucket_by_sequence_length(
        lambda x, y: tf.shape(x)[0],
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
    )
    # known, so Keras shows progress and does not warn that the input "ran out of data"
    ds = ds.apply(
        tf.data.experimental.assert_cardinality(
            _n_batches(split["lengths"], split["ids"].shape[1], batch_size, boundaries)
        )
    )
    ds = ds.prefetch(tf.data.AUTOTUNE)
    if epoch is not None:
        ds.set_epoch = lambda e: epoch.assign(e)
    return ds


def _n_batches(lengths: np.ndarray, width: int, batch_size: int, boundaries: list[int]) -> int:
    """Batches of one epoch, whatever the order: each bucket's reviews in full batches and one
    partial batch (tf.data puts length n in the bucket of the boundaries <= n)."""
    bucket = np.searchsorted(boundaries, np.clip(lengths, 1, width), side="right")
    return int(sum(-(-count // batch_size) for count in np.bincount(bucket)))
