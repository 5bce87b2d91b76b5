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


def with_soft_labels(train: dict, soft: dict, vocab_size: int) -> dict[str, np.ndarray]:
    """The training split followed by the teach stage's unlabelled reviews, their labels the
    teacher's probabilities (floats in [0, 1]; the training labels as floats)."""
    if soft["ids"].shape[1] != train["ids"].shape[1]:
        raise PipelineError(
            f"the soft-labelled reviews are {soft['ids'].shape[1]} tokens wide, the training "
            f"split {train['ids'].shape[1]}: rerun the teach stage (dvc repro imdb_teach)"
        )
    labels = soft["labels"].astype("float32")
    if not (
        np.isfinite(labels).all() and labels.min(initial=0) >= 0 and labels.max(initial=0) <= 1
    ):
        raise PipelineError("soft labels must be probabilities in [0, 1]")
    if soft["ids"].max(initial=0) >= vocab_size:
        raise PipelineError(
            f"soft-labelled reviews hold token ids beyond the vocabulary ({vocab_size})"
        )
    return {
        "ids": np.concatenate([train["ids"], soft["ids"]]),
        "lengths": np.concatenate([train["lengths"], soft["lengths"]]),
        "labels": np.concatenate([train["labels"].astype("float32"), labels]),
    }


def dataset(
    split: dict,
    batch_size: int,
    max_len: int,
    seed: int | None = None,
    crop: float = 0.0,
    crop_min_tokens: int = 5,
):
    """Batches of similar length (tf.data bucketing): each batch is padded only to its longest
    review. `seed` shuffles (training); None keeps the order of buckets as they fill.

    `crop` (training, with a seed): each epoch, about this fraction of the reviews is cut to a
    random window of consecutive tokens, its length log-uniform between crop_min_tokens and the
    review's, so that the model also learns to read short texts (a sentence, a one-line
    review) and not only IMDb's long reviews. A window keeps its review's label and batch.

    The shuffled order and the windows of an epoch are a function of (seed, epoch) alone, so a
    resumed run sees the same batches as an uninterrupted one: the dataset has a
    `set_epoch(epoch)` method, which `rnnpipe.core.training.fit` calls before each epoch (0
    until then).
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
    step = max(max_len // 8, 1)
    boundaries = list(range(step, max_len, step))
    buckets = {
        "bucket_boundaries": boundaries,
        "bucket_batch_sizes": [batch_size] * (len(boundaries) + 1),
    }
    if crop > 0 and epoch is not None:

        def window(i):
            n = tf.maximum(lengths[i], 1)
            return _window(ids[i][:n], n, (seed, epoch.read_value(), i), crop, crop_min_tokens)

        ds = rows.map(
            lambda i: (window(i), tf.maximum(lengths[i], 1), labels[i]),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        # bucketed by the whole review's length: the same batches per epoch as without crops
        ds = ds.bucket_by_sequence_length(lambda x, n, y: n, **buckets)
        ds = ds.map(lambda x, n, y: (x, y))
    else:
        ds = rows.map(
            lambda i: (ids[i][: tf.maximum(lengths[i], 1)], labels[i]),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        ds = ds.bucket_by_sequence_length(lambda x, y: tf.shape(x)[0], **buckets)
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


def _window(x, n, key, crop: float, min_tokens: int):
    """x (a review's n tokens), or, with probability `crop`, a window of it: length
    log-uniform in [min_tokens, n], start uniform. Drawn from `key` (seed, epoch, row) alone."""
    import tensorflow as tf

    seeds = tf.stack([tf.cast(key[0], tf.int64), tf.cast(key[1], tf.int64)])
    seeds = tf.random.experimental.stateless_fold_in(seeds, tf.cast(key[2], tf.int64))
    u = tf.random.stateless_uniform([3], seeds, dtype=tf.float64)
    n64 = tf.cast(n, tf.float64)
    low = tf.math.log(tf.cast(min_tokens, tf.float64))
    size = tf.exp(low + u[1] * (tf.math.log(n64 + 1.0) - low))
    size = tf.clip_by_value(tf.cast(size, tf.int32), min_tokens, n)
    start = tf.minimum(tf.cast(u[2] * tf.cast(n - size + 1, tf.float64), tf.int32), n - size)
    cut = tf.logical_and(u[0] < crop, n > min_tokens)
    return tf.cond(cut, lambda: x[start : start + size], lambda: x)


def _n_batches(lengths: np.ndarray, width: int, batch_size: int, boundaries: list[int]) -> int:
    """Batches of one epoch, whatever the order: each bucket's reviews in full batches and one
    partial batch (tf.data puts length n in the bucket of the boundaries <= n)."""
    bucket = np.searchsorted(boundaries, np.clip(lengths, 1, width), side="right")
    return int(sum(-(-count // batch_size) for count in np.bincount(bucket)))
