"""IMDb sentiment: vocab, encode, train, evaluate, baseline."""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from rnnpipe.atomic import atomic_path, write_json
from rnnpipe.errors import PipelineError
from rnnpipe.params import Params
from rnnpipe.params import model_hparams as tuned_or_given
from rnnpipe.stages import arg, command
from rnnpipe.text import words
from rnnpipe.text.vocab import Vocabulary

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
CHECKPOINTS = Path(".checkpoints/imdb")


def read_reviews(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_parquet(path)
    except (OSError, ValueError) as e:
        raise PipelineError(f"cannot read reviews {path}: {e}") from None
    missing = {"split", "label", "text"} - set(df.columns)
    if missing:
        raise PipelineError(f"{path}: missing column(s) {sorted(missing)}")
    return df


def read_split(folder: Path, split: str) -> dict[str, np.ndarray]:
    path = Path(folder) / f"{split}.npz"
    try:
        with np.load(path) as z:
            return {k: z[k] for k in ("ids", "lengths", "labels")}
    except (OSError, KeyError, ValueError) as e:
        raise PipelineError(f"cannot read encoded split {path}: {e}") from None


# ---------------------------------------------------------------- vocab, encode


@command("imdb", "vocab",
         arg("reviews", type=Path, help="reviews.parquet"),
         arg("out", type=Path, help="vocab.json"),
         help="word vocabulary of the training split")
def vocab(params: Params, reviews: Path, out: Path) -> None:
    p = params.imdb.vocab
    df = read_reviews(reviews)
    train = df.loc[df["split"] == "train", "text"]
    if train.empty:
        raise PipelineError(f"{reviews}: no review in the train split")
    t = time.perf_counter()
    v = words.build_vocabulary(train, p.max_tokens, p.min_count)
    v.save(out)
    log.info("wrote %s: %d tokens from %d reviews in %.2f s", out, len(v), len(train),
             time.perf_counter() - t)


@command("imdb", "encode",
         arg("reviews", type=Path, help="reviews.parquet"),
         arg("vocab", type=Path, help="vocab.json"),
         arg("outdir", type=Path, help="folder for train/valid/test .npz"),
         help="token ids, lengths and labels of each split, truncated per params")
def encode(params: Params, reviews: Path, vocab: Path, outdir: Path) -> None:
    p = params.imdb.encode
    v = Vocabulary.load(vocab)
    df = read_reviews(reviews)
    df = df[df["split"].isin(SPLITS)]
    t = time.perf_counter()
    ids, lengths = words.encode_tokens(words.tokenize_array(df["text"]), v, p.max_len,
                                       p.truncate)
    log.info("encoded %d reviews in %.2f s", len(df), time.perf_counter() - t)
    for split in SPLITS:
        rows = (df["split"] == split).to_numpy()
        if not rows.any():
            raise PipelineError(f"{reviews}: no review in the {split} split")
        with atomic_path(outdir / f"{split}.npz") as tmp:
            np.savez(tmp, ids=ids[rows], lengths=lengths[rows],
                     labels=df["label"].to_numpy()[rows].astype(np.int8))
        log.info("wrote %s: %d reviews, %.1f%% truncated", outdir / f"{split}.npz", rows.sum(),
                 100 * np.mean(lengths[rows] == p.max_len))


# ---------------------------------------------------------------- train


def dataset(split: dict, batch_size: int, max_len: int, seed: int | None = None):
    """Batches of similar length (tf.data bucketing): each batch is padded only to its longest
    review. `seed` shuffles (training); None keeps the order of buckets as they fill."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(
        (split["ids"], split["lengths"], split["labels"].astype("float32")[:, None]))
    if seed is not None:
        ds = ds.shuffle(len(split["ids"]), seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(lambda x, n, y: (x[: tf.maximum(n, 1)], y))
    step = max(max_len // 8, 1)
    ds = ds.bucket_by_sequence_length(
        lambda x, y: tf.shape(x)[0],
        bucket_boundaries=list(range(step, max_len, step)),
        bucket_batch_sizes=[batch_size] * len(range(step, max_len, step)) + [batch_size])
    return ds.prefetch(tf.data.AUTOTUNE)


def model_hparams(params: Params, best_hparams: Path | None) -> dict:
    """The model's hyperparameters: params imdb.train.model, or the tune stage's best."""
    t = params.imdb.train
    return tuned_or_given(t.model, t.use_tuned, best_hparams, "imdb.train.use_tuned")


@command("imdb", "train",
         arg("processed", type=Path, help="folder with train/valid .npz"),
         arg("vocab", type=Path, help="vocab.json"),
         arg("outdir", type=Path, help="models/imdb"),
         arg("best_hparams", type=Path, nargs="?", default=None,
             help="best_hparams.json of the tune stage (used when imdb.train.use_tuned)"),
         help="train the sentiment RNN, early-stopping on validation loss; log to MLflow")
def train(params: Params, processed: Path, vocab: Path, outdir: Path,
          best_hparams: Path | None = None) -> None:
    import mlflow

    from rnnpipe import tracking, training
    from rnnpipe.models.sentiment import build_sentiment_model

    p = params.imdb.train
    hp = model_hparams(params, best_hparams)
    v = Vocabulary.load(vocab)
    tr, va = read_split(processed, "train"), read_split(processed, "valid")
    max_len = tr["ids"].shape[1]
    training.set_seed(params.seed)
    model = build_sentiment_model(hp, len(v))
    settings = {"hp": hp, "train": p.model_dump(), "seed": params.seed, "vocab": len(v),
                "n": [len(tr["ids"]), len(va["ids"])], "checksum": int(tr["ids"].sum() % 1e9)}
    with tracking.new_run("imdb", outdir / "run_id.txt", run_name="imdb-train") as run:
        mlflow.log_params(tracking.flatten({"seed": params.seed, "vocab": params.imdb.vocab
                                            .model_dump(), "encode": params.imdb.encode
                                            .model_dump(), "train": p.model_dump(),
                                            "model": hp}))
        mlflow.log_params({"vocab_size": len(v), "n_train": len(tr["ids"]),
                           "n_valid": len(va["ids"])})
        mlflow.set_tag("device", tracking.device_name())
        tracking.log_model_summary(model)
        t = time.perf_counter()
        model, history = training.fit(
            model, dataset(tr, p.batch_size, max_len, seed=params.seed),
            dataset(va, p.batch_size, max_len), epochs=p.epochs, patience=p.patience,
            checkpoint_dir=CHECKPOINTS, settings=settings,
            callbacks=[_epoch_timer(), tracking.MlflowMetrics()], verbose=2, shuffle=False)
        mlflow.log_metric("train_seconds", time.perf_counter() - t)
        with atomic_path(outdir / "model.keras") as tmp:
            model.save(tmp)
        shutil.copyfile(vocab, outdir / ".vocab.json.tmp")
        Path(outdir / ".vocab.json.tmp").replace(outdir / "vocab.json")
        write_json(outdir / "history.json", history)
        log.info("run %s: best val_loss %.4f", run.info.run_id,
                 min(h["val_loss"] for h in history))
    training.clear_checkpoints(CHECKPOINTS)


def _epoch_timer():
    """Wall seconds of each epoch into its logs, so MLflowMetrics logs them too."""
    import keras

    start = {}
    return keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: start.update(t=time.perf_counter()),
        on_epoch_end=lambda epoch, logs: logs.update(
            epoch_seconds=time.perf_counter() - start["t"]))


# ---------------------------------------------------------------- evaluate


def binary_metrics(labels: np.ndarray, proba: np.ndarray, threshold: float) -> dict:
    from sklearn import metrics as m

    pred = (proba >= threshold).astype(int)
    return {
        "accuracy": float(m.accuracy_score(labels, pred)),
        "precision": float(m.precision_score(labels, pred, zero_division=0)),
        "recall": float(m.recall_score(labels, pred, zero_division=0)),
        "f1": float(m.f1_score(labels, pred, zero_division=0)),
        "roc_auc": float(m.roc_auc_score(labels, proba)) if len(set(labels)) > 1 else None,
        "loss": float(m.log_loss(labels, np.clip(proba, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "n": int(len(labels)),
    }


def write_csv(path: Path, df: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


@command("imdb", "evaluate",
         arg("processed", type=Path, help="folder with test.npz"),
         arg("modeldir", type=Path, help="models/imdb (model.keras, vocab.json, run_id.txt)"),
         arg("metrics", type=Path, help="reports/imdb/metrics.json"),
         arg("plots", type=Path, help="folder for the plot files"),
         help="test metrics and plots into the train run; log and register the pyfunc model")
def evaluate(params: Params, processed: Path, modeldir: Path, metrics: Path,
             plots: Path) -> None:
    import keras
    import mlflow
    from sklearn.metrics import roc_curve

    from rnnpipe import tracking
    from rnnpipe.models.sentiment import predict_proba
    from rnnpipe.serving import sentiment as serving

    test = read_split(processed, "test")
    try:
        model = keras.models.load_model(modeldir / "model.keras")
    except (OSError, ValueError) as e:
        raise PipelineError(f"cannot load {modeldir / 'model.keras'}: {e}") from None
    labels = test["labels"].astype(int)
    proba = predict_proba(model, test["ids"], test["lengths"])
    thr = params.imdb.evaluate.threshold
    result = binary_metrics(labels, proba, thr)
    fpr, tpr, _ = roc_curve(labels, proba)
    history = json.loads((modeldir / "history.json").read_text())
    write_csv(plots / "confusion.csv",
              pd.DataFrame({"actual": labels, "predicted": (proba >= thr).astype(int)}))
    write_csv(plots / "roc.csv", pd.DataFrame({"fpr": fpr, "tpr": tpr}))
    write_csv(plots / "history.csv", pd.DataFrame(history)[
        [c for c in ("epoch", "loss", "val_loss", "accuracy", "val_accuracy")
         if c in history[0]]])
    with tracking.resume_run("imdb", modeldir / "run_id.txt"):
        mlflow.log_metrics({f"test_{k}": v for k, v in result.items() if v is not None})
        mlflow.log_artifacts(str(plots), "plots")
        info = serving.log_model(modeldir, params.imdb.encode, thr)
        result["model_uri"] = info.model_uri
        result["registered_version"] = info.registered_model_version
    write_json(metrics, result)
    log.info("test: %s", {k: result[k] for k in ("accuracy", "f1", "roc_auc")})


# ---------------------------------------------------------------- baseline


@command("imdb", "baseline",
         arg("reviews", type=Path, help="reviews.parquet"),
         arg("out", type=Path, help="reports/imdb/baseline.json"),
         help="TF-IDF (word n-grams) + logistic regression on the same splits")
def baseline(params: Params, reviews: Path, out: Path) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    p = params.imdb.baseline
    df = read_reviews(reviews)
    text = {s: df.loc[df["split"] == s, "text"].str.replace("<br />", " ", regex=False)
            for s in SPLITS}
    labels = {s: df.loc[df["split"] == s, "label"].to_numpy().astype(int) for s in SPLITS}
    t = time.perf_counter()
    vec = TfidfVectorizer(ngram_range=(1, p.ngram_max), max_features=p.max_features,
                          min_df=p.min_df, sublinear_tf=True)
    x_train = vec.fit_transform(text["train"])
    clf = LogisticRegression(C=p.C, max_iter=1000, solver="liblinear")
    clf.fit(x_train, labels["train"])
    result = {"fit_seconds": time.perf_counter() - t, "features": len(vec.vocabulary_)}
    for s in ("valid", "test"):
        proba = clf.predict_proba(vec.transform(text[s]))[:, 1]
        result[s] = binary_metrics(labels[s], proba, 0.5)
    write_json(out, result)
    log.info("baseline: valid accuracy %.4f, test accuracy %.4f",
             result["valid"]["accuracy"], result["test"]["accuracy"])


__all__ = ["baseline", "binary_metrics", "dataset", "encode", "evaluate", "train", "vocab"]
