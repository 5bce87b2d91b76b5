"""register: a new version of `imdb.promote.model_name` from the train run's logged model; the
`champion` alias moves to it only when its validation metric beats the champion's on the same
validation data.

The basis of the validation metric (rnnpipe.core.registry): the metric, the SHA-256 of the
encoded validation split, and the threshold policy (`imdb.evaluate.threshold`: null ->
"best-valid-accuracy", else "fixed:<threshold>"). A champion on another basis is scored again
on the challenger's validation split, as the evaluate stage scores a model (its functions:
load_model, read_split, predict_proba, best_threshold, binary_metrics) with the challenger's
threshold policy; the ids are carried over into the champion's own vocabulary and cut to its
own max_len and truncation side (its serving_config) first. RNNPIPE_PROMOTE=challenger|keep
decides when the champion cannot be scored (see rnnpipe.core.registry).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rnnpipe.core import registry
from rnnpipe.core.commands import command
from rnnpipe.core.errors import PipelineError
from rnnpipe.core.params import Params


def threshold_policy(threshold: float | None) -> str:
    """How evaluate picks the decision threshold: chosen on validation, or fixed."""
    return "best-valid-accuracy" if threshold is None else f"fixed:{float(threshold)!r}"


def recut(
    ids: np.ndarray, lengths: np.ndarray, max_len: int, keep: str, pad_id: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of `ids` (right-padded, `lengths` real tokens) cut to `max_len` tokens, keeping the
    first ("start") or last ("end") ones, as rnnpipe.imdb.words.encode_tokens cuts a review.
    Rows can only get shorter: tokens the data's own encoding cut are gone."""
    if max_len >= ids.shape[1]:
        return ids, lengths
    kept = np.minimum(lengths, max_len)
    first = lengths - kept if keep == "end" else np.zeros_like(lengths)
    col = np.arange(max_len)
    index = np.minimum(first[:, None] + col, ids.shape[1] - 1)
    out = np.where(col < kept[:, None], np.take_along_axis(ids, index, axis=1), pad_id)
    return out.astype(ids.dtype), kept.astype(lengths.dtype)


def scorer(valid: Path, metric: str, threshold: float | None) -> registry.Scorer:
    """Scores a champion's artifacts (model, vocab, config: rnnpipe.imdb.pyfunc) on the encoded
    split `valid`, whose vocabulary is the vocab.json beside it."""

    def score(artifacts: dict[str, Path]) -> tuple[float, dict]:
        from rnnpipe.core.vocab import Vocabulary
        from rnnpipe.imdb.inputs import read_split
        from rnnpipe.imdb.metrics import best_threshold, binary_metrics
        from rnnpipe.imdb.model import load_model, predict_proba

        missing = {"model", "vocab", "config"} - set(artifacts)
        if missing:
            raise PipelineError(f"the champion's model has no {sorted(missing)} artifact(s)")
        model = load_model(artifacts["model"])
        config = json.loads(Path(artifacts["config"]).read_text(encoding="utf-8"))
        data = read_split(valid.parent, valid.name.removesuffix(".npz"))
        source = Vocabulary.load(valid.parent / "vocab.json")
        target = Vocabulary.load(artifacts["vocab"])
        real = np.arange(data["ids"].shape[1]) < data["lengths"][:, None]
        ids, details = registry.translate_ids(data["ids"], source, target, real)
        ids, lengths = recut(
            ids,
            data["lengths"],
            int(config["max_len"]),
            config.get("truncate", "end"),
            target.pad_id,
        )
        if int(config["max_len"]) != data["ids"].shape[1]:
            details["max_len"] = {
                "champion": int(config["max_len"]),
                "valid_data": int(data["ids"].shape[1]),
            }
        # as the evaluate stage: the threshold is chosen on validation unless fixed
        labels = data["labels"].astype(int)
        proba = predict_proba(model, ids, lengths)
        thr = best_threshold(labels, proba) if threshold is None else threshold
        value = registry.metric_value(binary_metrics(labels, proba, thr), metric)
        return value, details | {"threshold": float(thr)}

    return score


@command("imdb", "register", *registry.ARGS, help=registry.HELP)
def register(params: Params, model: Path, metrics: Path, valid: Path, out: Path) -> None:
    p = params.imdb.promote
    threshold = params.imdb.evaluate.threshold
    basis = registry.data_basis(valid, p.metric) | {"threshold": threshold_policy(threshold)}
    registry.register_stage(
        "imdb", p, model, metrics, out, basis, scorer(valid, p.metric, threshold)
    )
