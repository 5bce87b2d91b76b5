"""teach: the student's extra data for self-training. A teacher labels a seeded random subset of
the unlabelled reviews with its probability that the review is positive:

- rnn: the train stage's model;
- nbsvm: NBSVM (binary word n-grams scaled by naive Bayes log-count ratios, logistic
  regression; baseline.fit_nbsvm), fit here on the training reviews;
- stack: both, logit = w x RNN's + (1 - w) x NBSVM's, with the w of the lowest validation log
  loss. The two disagree where neither is sure, and their mixture is right more often than
  either (benchmarks/README.md, "Self-training"). NBSVM's validation log loss is 0.250 against
  the baseline stage's TF-IDF model's 0.289, and so is its stack's: 0.218 against 0.230.

With `imdb.student.windows`, each of those reviews also gives one window of its words (its
length log-uniform between `window_min_words` and the review's, its start uniform, seeded), and
the teacher labels the window itself: a window that says nothing of the verdict gets a
probability near 0.5, one that does a confident one. So the student also learns to read short
texts, which the served model is sent, without the noise of a window that keeps its review's
label (`imdb.train.crop`; benchmarks/README.md, "Short texts labelled by the teacher").

The reviews (then the windows) are encoded as encode encodes the splits, checked by a Great
Expectations gate and written, ids, lengths and the probabilities as labels, for the student
stage. Validation chooses the weight; test is never read.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from rnnpipe.core import gx as runner
from rnnpipe.core.atomic import atomic_path, write_json
from rnnpipe.core.commands import arg, command
from rnnpipe.core.errors import PipelineError
from rnnpipe.core.params import Params
from rnnpipe.core.vocab import Vocabulary
from rnnpipe.imdb import words
from rnnpipe.imdb.baseline import fit_nbsvm, plain_text
from rnnpipe.imdb.checks import soft_suite, soft_table
from rnnpipe.imdb.inputs import read_split
from rnnpipe.imdb.prepare import read_reviews

log = logging.getLogger(__name__)

WEIGHTS = np.round(np.linspace(0.0, 1.0, 21), 2)  # the stack's RNN weights tried
EPS = 1e-7  # probabilities are clipped to [EPS, 1 - EPS] before their logits are taken


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype="float64"), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def stacked(weight: float, rnn: np.ndarray, linear: np.ndarray) -> np.ndarray:
    """The probability whose logit is weight x rnn's + (1 - weight) x linear's."""
    return 1 / (1 + np.exp(-(weight * logit(rnn) + (1 - weight) * logit(linear))))


def log_loss(labels: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(np.asarray(p, dtype="float64"), EPS, 1 - EPS)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log1p(-p)))


def best_weight(labels: np.ndarray, rnn: np.ndarray, linear: np.ndarray) -> float:
    """The RNN's weight in WEIGHTS with the lowest log loss on (labels, rnn, linear); the first
    of equals."""
    losses = [log_loss(labels, stacked(w, rnn, linear)) for w in WEIGHTS]
    return float(WEIGHTS[int(np.argmin(losses))])


def windows(texts, min_words: int, rng: np.random.Generator) -> list[str]:
    """One window of consecutive words of each text (words split at white space, joined by
    one space): its length log-uniform in [min_words, n], its start uniform; a text of at most
    min_words words is kept whole. Two draws from `rng` per longer text."""
    out = []
    for text in texts:
        split = text.split()
        n = len(split)
        if n <= min_words:
            out.append(" ".join(split))
            continue
        u = rng.random(2)
        size = int(np.exp(np.log(min_words) + u[0] * (np.log(n + 1) - np.log(min_words))))
        size = min(max(size, min_words), n)
        start = min(int(u[1] * (n - size + 1)), n - size)
        out.append(" ".join(split[start : start + size]))
    return out


def scores(labels: np.ndarray, p: np.ndarray) -> dict:
    return {
        "accuracy": round(float(np.mean((p > 0.5) == labels)), 6),
        "log_loss": round(log_loss(labels, p), 6),
    }


def confident(p: np.ndarray) -> float:
    """The share of probabilities below 0.1 or above 0.9."""
    return round(float(np.mean((p < 0.1) | (p > 0.9))), 6)


@command(
    "imdb",
    "teach",
    arg("reviews", type=Path, help="data/interim/imdb/reviews.parquet"),
    arg("processed", type=Path, help="folder of vocab.json and valid.npz"),
    arg("model", type=Path, help="models/imdb/model.keras (the train stage's; teacher rnn, stack)"),
    arg("out", type=Path, help="data/processed/imdb/unsup_soft.npz: ids, lengths, labels"),
    arg("report", type=Path, help="reports/imdb/teach.json: the teachers' validation scores"),
    arg("quality", type=Path, help="reports/quality/imdb_soft_labels.json: the gate's report"),
    help="label unlabelled reviews with a teacher's probabilities, for the student stage",
)
def teach(
    params: Params,
    reviews: Path,
    processed: Path,
    model: Path,
    out: Path,
    report: Path,
    quality: Path,
) -> None:
    p, e = params.imdb.student, params.imdb.encode
    t0 = time.perf_counter()
    df = read_reviews(reviews)
    unsup = df[df["split"] == "unsup"]
    n = len(unsup) if p.unsup_reviews is None else p.unsup_reviews
    if n == 0 or n > len(unsup):
        raise PipelineError(
            f"imdb.student.unsup_reviews is {n}, but {reviews} holds {len(unsup)} unlabelled "
            "reviews (imdb.ingest.include_unsup brings them; null takes them all)"
        )
    unsup = unsup.iloc[np.sort(np.random.default_rng(params.seed).permutation(len(unsup))[:n])]
    vocab = Vocabulary.load(processed / "vocab.json")
    ids, lengths = words.encode_tokens(
        words.tokenize_array(unsup["text"]), vocab, e.max_len, e.truncate
    )
    valid = read_split(processed, "valid")
    labels = df.loc[df["split"] == "valid", "label"].to_numpy().astype("int64")
    if not np.array_equal(labels, valid["labels"]):
        raise PipelineError(
            f"{processed / 'valid.npz'} is not the valid split of {reviews}: rerun encode"
        )

    # what the teachers read: the validation reviews (to choose the stack's weight), the
    # unlabelled ones, then, with windows, a window of each of those in the same order
    texts = [df.loc[df["split"] == "valid", "text"], unsup["text"]]
    encoded = [(valid["ids"], valid["lengths"]), (ids, lengths)]
    if p.windows:
        rng = np.random.default_rng(params.seed)
        for text in texts[:2]:
            cut = windows(plain_text(text), p.window_min_words, rng)
            texts.append(pd.Series(cut))
            encoded.append(words.encode_texts(cut, vocab, e.max_len, e.truncate))

    probs = {}  # teacher -> its probabilities of each of `texts`
    if p.teacher in ("rnn", "stack"):
        from rnnpipe.imdb.model import load_model, predict_proba

        rnn = load_model(model)
        probs["rnn"] = [predict_proba(rnn, x, size).astype("float64") for x, size in encoded]
    if p.teacher in ("nbsvm", "stack"):
        train = df[df["split"] == "train"]
        predict = fit_nbsvm(p.nbsvm, plain_text(train["text"]), train["label"].to_numpy())
        probs["nbsvm"] = [predict(plain_text(t)) for t in texts]
    result = {"teacher": p.teacher, "unsup_reviews": n}
    if p.teacher == "stack":
        w = best_weight(labels, probs["rnn"][0], probs["nbsvm"][0])
        probs["stack"] = [
            stacked(w, r, b) for r, b in zip(probs["rnn"], probs["nbsvm"], strict=True)
        ]
        result["rnn_weight"] = w
    result["valid"] = {name: scores(labels, pv[0]) for name, pv in probs.items()}
    soft = probs[p.teacher][1].astype("float32")
    if p.windows:
        # against each window's review's label: noisy (a window may say nothing of it), but
        # the same noise for every teacher
        result["valid_windows"] = {name: scores(labels, pv[2]) for name, pv in probs.items()}
        window_soft = probs[p.teacher][3].astype("float32")
        result["windows"] = {
            "count": len(window_soft),
            "mean_tokens": round(float(encoded[3][1].mean()), 2),
            "confident": confident(window_soft),
        }
        ids = np.concatenate([ids, encoded[3][0]])
        lengths = np.concatenate([lengths, encoded[3][1]])
        soft = np.concatenate([soft, window_soft])
    result["soft_labels"] = {
        "mean": round(float(soft.mean()), 6),
        "confident": confident(soft),
    }

    table = soft_table(ids, lengths, soft, vocab.pad_id)
    suite = soft_suite(n, len(vocab), e.max_len, p.windows)
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, ids=ids, lengths=lengths, labels=soft)
    try:  # the gate's MLflow run names the data by its hash: that of the file written
        runner.validate(
            "imdb_soft_labels",
            [runner.Table("soft_labels", table, suite, ("row",))],
            quality,
            files=[out],
        )
    except PipelineError:
        out.unlink()  # only data that passed is left for the student
        raise
    result["minutes"] = round((time.perf_counter() - t0) / 60, 2)
    write_json(report, result)
    log.info(
        "teacher %s: validation accuracy %.4f; %d unlabelled reviews, mean probability %.3f",
        p.teacher,
        result["valid"][p.teacher]["accuracy"],
        n,
        result["soft_labels"]["mean"],
    )
