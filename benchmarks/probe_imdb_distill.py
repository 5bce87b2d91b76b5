"""Self-training on the unlabelled reviews (issue 26, goal 1): a teacher labels the 50,000
unlabelled reviews with its probabilities, and a new sentiment RNN (the student, the train
stage's model from the same start) learns from the 20,001 labelled training reviews and those
soft labels together, in one shuffled stream. The student alone is then scored.

teacher=rnn: the train stage's model, trained here first on the labelled reviews (the control:
its figures are the plain model's). teacher=tfidf: the baseline stage's TF-IDF + logistic
regression, fit on the training reviews. teacher=stack: both, their logits mixed with the
weight best on validation (benchmarks/imdb_stack.py), a teacher 0.9 points above either alone
on test. teacher=nbsvm / nbstack: the same with the teach stage's NBSVM for
the TF-IDF model. The teacher RNN's probabilities are kept in `cache` (an .npz), so other
students reuse them. Run in a workspace where the pipeline has run through imdb_encode and
imdb_embed:

    python benchmarks/probe_imdb_distill.py teacher=stack
    python benchmarks/probe_imdb_distill.py teacher=tfidf unsup=25000 epochs=3

Prints validation and test accuracy after every epoch (test only to see how the idea
generalises; nothing is chosen on it).
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402
from probe_imdb_adversarial import key_values  # noqa: E402

from rnnpipe.core.errors import PipelineError  # noqa: E402
from rnnpipe.core.vocab import Vocabulary  # noqa: E402
from rnnpipe.imdb.baseline import fit, fit_nbsvm, plain_text  # noqa: E402
from rnnpipe.imdb.inputs import dataset, read_split  # noqa: E402
from rnnpipe.imdb.model import build_sentiment_model, predict_proba, read_vectors  # noqa: E402
from rnnpipe.imdb.params import ImdbBaselineParams, ImdbNbsvmParams  # noqa: E402
from rnnpipe.imdb.prepare import read_reviews  # noqa: E402
from rnnpipe.imdb.teach import best_weight, log_loss, stacked  # noqa: E402
from rnnpipe.imdb.words import encode_texts  # noqa: E402

DEFAULTS = dict(
    teacher="stack",
    unsup=50000,  # unlabelled reviews the student reads (a random subset when fewer)
    resample=0,  # 1: a fresh subset of `unsup` of the 50,000 each epoch (seeded by the epoch)
    hard=0,  # 1: the teacher's labels at 0.5 instead of its probabilities
    init="scratch",  # teacher: the student starts from the teacher RNN's weights
    skip=0,  # the student's learning rate starts at lr x lr_decay^skip
    epochs=4,
    teacher_epochs=4,
    seed=42,
    data="data/processed/imdb",
    cache="models/imdb/distill_teacher.npz",
)
TEACHERS = ("rnn", "tfidf", "stack", "nbsvm", "nbstack")


def settings(argv: list[str]) -> dict:
    cfg = key_values(argv, DEFAULTS)
    if cfg["teacher"] not in TEACHERS:
        raise SystemExit(f"teacher must be one of {', '.join(TEACHERS)}")
    if cfg["init"] not in ("scratch", "teacher") or cfg["skip"] < 0:
        raise SystemExit("init must be scratch or teacher, skip at least 0")
    if cfg["init"] == "teacher" and cfg["teacher"] in ("tfidf", "nbsvm"):
        raise SystemExit("init=teacher needs the teacher RNN (teacher=rnn or stack)")
    if min(cfg["unsup"], cfg["epochs"], cfg["teacher_epochs"]) < 1 or cfg["hard"] not in (0, 1):
        raise SystemExit("unsup, epochs and teacher_epochs must be at least 1, hard 0 or 1")
    if cfg["resample"] not in (0, 1):
        raise SystemExit("resample must be 0 or 1")
    return cfg


def train(
    model, split, batch: int, hp: dict, epochs: int, seed: int, report, skip: int = 0
) -> None:
    """The train stage's schedule: lr x lr_decay^(skip + epoch), bucketed shuffled batches.
    `split` is a dict of arrays, or a function of the epoch that returns one (resample=1)."""
    if not callable(split):
        data = dataset(split, batch, split["ids"].shape[1], seed=seed)
    for epoch in range(epochs):
        rate = hp["learning_rate"] * hp["lr_decay"] ** (skip + epoch)
        model.optimizer.learning_rate.assign(rate)
        if callable(split):
            part = split(epoch)
            data = dataset(part, batch, part["ids"].shape[1], seed=seed)
        data.set_epoch(epoch)
        model.fit(data, epochs=1, verbose=0)
        report(epoch + 1)


def main() -> None:
    cfg = settings(sys.argv[1:])
    params = yaml.safe_load(open("params.yaml"))["imdb"]
    hp = params["train"]["model"] | json.load(open("reports/imdb/tuning.json"))["best_hparams"]
    batch, max_len = params["train"]["batch_size"], params["encode"]["max_len"]
    tr, va, te = (read_split(cfg["data"], s) for s in ("train", "valid", "test"))
    vocab_size = json.load(open(f"{cfg['data']}/vocab.json"))["size"]
    vectors = read_vectors("models/imdb/word_vectors.npy", vocab_size)
    reviews = read_reviews("data/interim/imdb/reviews.parquet")
    raw = {s: reviews.loc[reviews["split"] == s, "text"] for s in ("train", "valid", "unsup")}
    vocab = Vocabulary.load(f"{cfg['data']}/vocab.json")
    u_ids, u_len = encode_texts(raw["unsup"], vocab, max_len)  # as encode does, keeping the end
    start = time.time()

    def scores(model, label: str):
        def report(epoch: int) -> None:
            pv = predict_proba(model, va["ids"], va["lengths"])
            pt = predict_proba(model, te["ids"], te["lengths"])
            row = {
                "epoch": epoch,
                "minutes": round((time.time() - start) / 60, 2),
                "val_loss": round(log_loss(va["labels"], pv.astype("float64")), 4),
                "val_acc": round(float(np.mean((pv > 0.5) == va["labels"])), 4),
                "test_acc": round(float(np.mean((pt > 0.5) == te["labels"])), 4),
            }
            print(label, json.dumps(row), flush=True)

        return report

    # the teacher's probabilities on valid (to mix the stack) and on the unlabelled reviews
    p = {}
    if cfg["teacher"] in ("rnn", "stack", "nbstack"):
        key = f"seed{cfg['seed']}_epochs{cfg['teacher_epochs']}"
        cached = np.load(cfg["cache"]) if os.path.exists(cfg["cache"]) else {}
        # the teacher RNN's weights, the student's start with init=teacher
        saved = cfg["cache"].replace(".npz", f"_{key}.weights.h5")
        if f"{key}_unsup" in cached and (cfg["init"] == "scratch" or os.path.exists(saved)):
            p["rnn"] = (cached[f"{key}_valid"], cached[f"{key}_unsup"])
            print(f"teacher rnn: from {cfg['cache']} ({key})", flush=True)
        else:
            keras.utils.set_random_seed(cfg["seed"])
            model = build_sentiment_model(hp, vocab_size, vectors)
            train(model, tr, batch, hp, cfg["teacher_epochs"], cfg["seed"], scores(model, "rnn"))
            p["rnn"] = (
                predict_proba(model, va["ids"], va["lengths"]).astype("float64"),
                predict_proba(model, u_ids, u_len).astype("float64"),
            )
            kept = {k: cached[k] for k in cached} | {f"{key}_valid": p["rnn"][0]}
            np.savez(cfg["cache"], **kept, **{f"{key}_unsup": p["rnn"][1]})
            model.save_weights(saved)
    labels = reviews.loc[reviews["split"] == "train", "label"].to_numpy().astype(int)
    if cfg["teacher"] in ("tfidf", "stack"):
        vec, clf = fit(ImdbBaselineParams(**params["baseline"]), plain_text(raw["train"]), labels)
        p["tfidf"] = tuple(
            clf.predict_proba(vec.transform(plain_text(raw[s])))[:, 1] for s in ("valid", "unsup")
        )
    if cfg["teacher"] in ("nbsvm", "nbstack"):
        predict = fit_nbsvm(ImdbNbsvmParams(), plain_text(raw["train"]), labels)
        p["nbsvm"] = tuple(predict(plain_text(raw[s])) for s in ("valid", "unsup"))
    if cfg["teacher"] in ("stack", "nbstack"):
        linear = "tfidf" if cfg["teacher"] == "stack" else "nbsvm"
        w = best_weight(va["labels"], p["rnn"][0], p[linear][0])
        teacher = tuple(stacked(w, p["rnn"][i], p[linear][i]) for i in (0, 1))
        print(f"teacher stack: RNN weight {w}", flush=True)
    else:
        teacher = p[cfg["teacher"]]
    acc = float(np.mean((teacher[0] > 0.5) == va["labels"]))
    print(f"teacher {cfg['teacher']}: val_acc {acc:.4f}", flush=True)

    def subset(epoch: int | None) -> dict:
        """The training reviews and `unsup` soft-labelled ones: a subset fixed by the seed, or
        with resample=1 drawn afresh for each epoch."""
        key = cfg["seed"] if epoch is None else [cfg["seed"], epoch]
        rows = np.sort(np.random.default_rng(key).permutation(len(u_ids))[: cfg["unsup"]])
        soft = teacher[1][rows]
        if cfg["hard"]:
            soft = (soft > 0.5).astype("float64")
        return {
            "ids": np.concatenate([tr["ids"], u_ids[rows]]),
            "lengths": np.concatenate([tr["lengths"], u_len[rows]]),
            "labels": np.concatenate([tr["labels"].astype("float64"), soft]),
        }

    both = subset if cfg["resample"] else subset(None)
    keras.utils.set_random_seed(cfg["seed"])
    student = build_sentiment_model(hp, vocab_size, vectors)
    if cfg["init"] == "teacher":
        student.load_weights(saved)
    label = (
        f"student of {cfg['teacher']} (unsup={min(cfg['unsup'], len(u_ids))}"
        f" resample={cfg['resample']} hard={cfg['hard']} init={cfg['init']} skip={cfg['skip']})"
    )
    report = scores(student, label)
    train(student, both, batch, hp, cfg["epochs"], cfg["seed"], report, skip=cfg["skip"])


if __name__ == "__main__":
    try:
        main()
    except (PipelineError, OSError) as e:  # a missing split, vocabulary, vectors or params
        hint = "run `dvc repro imdb_encode imdb_embed` first"
        raise SystemExit(f"probe_imdb_distill: {e} ({hint})") from None
