"""The character-level language model: vocab, encode, train, evaluate, generate."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import time
from pathlib import Path

import numpy as np

from rnnpipe.atomic import atomic_path, write_json, write_text
from rnnpipe.errors import PipelineError
from rnnpipe.params import Params, model_hparams
from rnnpipe.stages import arg, command
from rnnpipe.text import chars
from rnnpipe.text.vocab import Vocabulary, char_vocabulary

log = logging.getLogger(__name__)

CHECKPOINTS = Path(".checkpoints/charlm")


def _read_corpus(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise PipelineError(f"{path} is not UTF-8 text: {e}") from None
    if not text:
        raise PipelineError(f"{path} is empty")
    return text


@command("charlm", "vocab",
         arg("corpus", type=Path, help="data/interim/charlm/corpus.txt"),
         arg("out", type=Path, help="vocab.json"),
         help="character vocabulary of the training part of the corpus (id 0: unseen)")
def vocab(params: Params, corpus: Path, out: Path) -> None:
    text = chars.train_part(_read_corpus(corpus), params.charlm.encode.train_fraction)
    v = char_vocabulary(text)
    v.save(out)
    log.info("wrote %s: %d ids", out, len(v))


@command("charlm", "encode",
         arg("corpus", type=Path, help="data/interim/charlm/corpus.txt"),
         arg("vocab", type=Path, help="vocab.json"),
         arg("outdir", type=Path, help="folder for train/valid/test.npz"),
         help="the corpus as int32 ids, split by position into train, valid, test")
def encode(params: Params, corpus: Path, vocab: Path, outdir: Path) -> None:
    p = params.charlm.encode
    ids = chars.encode(_read_corpus(corpus), Vocabulary.load(vocab))
    for part, (start, stop) in chars.split_by_position(
            len(ids), p.train_fraction, p.valid_fraction).items():
        with atomic_path(outdir / f"{part}.npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, ids=ids[start:stop], start=np.int64(start))
        log.info("%s: characters %d..%d", part, start, stop)


def _load_ids(path: Path) -> np.ndarray:
    try:
        with np.load(path) as d:
            return d["ids"].astype(np.int32)
    except (OSError, KeyError, ValueError) as e:
        raise PipelineError(f"cannot read encoded text {path}: {e}") from None


def _bits(logs: dict) -> dict:
    return {f"{k[:-4]}bits_per_char": v / math.log(2) for k, v in logs.items()
            if k.endswith("loss")}


@command("charlm", "train",
         arg("processed", type=Path, help="folder of train/valid/test.npz"),
         arg("vocab", type=Path, help="vocab.json"),
         arg("out", type=Path, help="models/charlm: model.keras, vocab.json, run_id.txt"),
         arg("best_hparams", type=Path, nargs="?", default=None,
             help="best_hparams.json of the tune stage (read when charlm.train.use_tuned)"),
         help="train the character-level language model (windows or truncated BPTT)")
def train(params: Params, processed: Path, vocab: Path, out: Path,
          best_hparams: Path | None = None) -> None:
    import keras
    import mlflow

    from rnnpipe import tracking, training
    from rnnpipe.models import charlm

    p = params.charlm.train
    hp = model_hparams(p.model, p.use_tuned, best_hparams, "charlm.train.use_tuned")
    v = Vocabulary.load(vocab)
    train_ids, valid_ids = _load_ids(processed / "train.npz"), _load_ids(processed / "valid.npz")
    training.set_seed(params.seed)
    if p.feed == "tbptt":
        x, y = charlm.stream_batches(train_ids, p.batch_size, p.seq_length)
        xv, yv = charlm.stream_batches(valid_ids, p.batch_size, p.seq_length)
        model = charlm.build_char_lm(hp, len(v), stateful=True, batch_size=p.batch_size)
        extra, shuffle = [charlm.ResetStates()], False
    else:
        x, y = charlm.window_batches(train_ids, p.seq_length)
        xv, yv = charlm.window_batches(valid_ids, p.seq_length)
        model = charlm.build_char_lm(hp, len(v))
        extra, shuffle = [], True
    fingerprint = hashlib.sha256(train_ids.tobytes() + valid_ids.tobytes()).hexdigest()[:16]
    settings = {"train": p.model_dump(), "hp": hp, "seed": params.seed, "vocab": len(v),
                "data": fingerprint, "backend": keras.backend.backend()}
    logged = charlm.EpochsSeen()
    with tracking.new_run("charlm", out / "run_id.txt", run_name=f"charlm-{hp['cell']}-{p.feed}"):
        mlflow.log_params(tracking.flatten({"seed": params.seed, "train": p.model_dump(),
                                            "hp": hp, "vocab_size": len(v),
                                            "train_chars": len(train_ids),
                                            "valid_chars": len(valid_ids)}))
        mlflow.set_tag("device", tracking.device_name())
        tracking.log_model_summary(model)
        t0 = time.perf_counter()
        model, history = training.fit(
            model, x, (xv, yv), y=y, epochs=p.epochs, patience=p.patience,
            checkpoint_dir=CHECKPOINTS, settings=settings,
            callbacks=[*extra, tracking.MlflowMetrics(transform=_bits), logged],
            batch_size=p.batch_size, shuffle=shuffle, verbose=2)
        seconds = time.perf_counter() - t0
        # epochs finished by an earlier, killed run of this stage
        for e in history:
            if e["epoch"] not in logged.epochs:
                logs = {k: v for k, v in e.items() if k != "epoch"}
                mlflow.log_metrics(logs | _bits(logs), step=e["epoch"])
        mlflow.log_metric("train_seconds", seconds)
        with atomic_path(out / "model.keras") as tmp:
            model.save(tmp)
        v.save(out / "vocab.json")
        write_json(out / "history.json", {"hparams": hp, "feed": p.feed,
                                          "train_seconds": seconds, "epochs": history})
    training.clear_checkpoints(CHECKPOINTS)
    log.info("trained in %.0f s; best val_loss %.4f", seconds,
             min(e["val_loss"] for e in history))


@command("charlm", "evaluate",
         arg("model_dir", type=Path, help="models/charlm"),
         arg("processed", type=Path, help="folder of train/valid/test.npz"),
         arg("reports", type=Path, help="reports/charlm: metrics.json, curves.csv, samples.md"),
         help="held-out loss, bits per character, perplexity, samples; log the pyfunc")
def evaluate(params: Params, model_dir: Path, processed: Path, reports: Path) -> None:
    import keras
    import mlflow

    from rnnpipe import tracking
    from rnnpipe.models import generate
    from rnnpipe.serving import charlm as serving

    p = params.charlm.evaluate
    model = _load_model(model_dir / "model.keras")
    v = Vocabulary.load(model_dir / "vocab.json")
    test_ids = _load_ids(processed / "test.npz")
    # one continuous stream from a zero state, state carried across the whole test part
    m = generate.metrics(generate.stream_loss(model, test_ids))
    m["test_chars"] = len(test_ids)
    write_json(reports / "metrics.json", m)

    history = json.loads((model_dir / "history.json").read_text())["epochs"]
    buf = io.StringIO()
    cols = ["epoch", "loss", "val_loss", "bits_per_char", "val_bits_per_char"]
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for e in history:
        row = e | _bits(e)
        w.writerow({c: row[c] for c in cols})
    write_text(reports / "curves.csv", buf.getvalue())

    gen = generate.Generator(model, v)
    parts = [f"# Samples from {p.prompt!r}\n",
             "Temperature divides the logits (temperature = 1 / the textbook's scale factor). "
             f"{p.sample_length} characters each, seed {params.seed}.\n"]
    for t in p.temperatures:
        text = gen.generate(p.prompt, p.sample_length, t, seed=params.seed)
        parts.append(f"## temperature {t:g}\n\n```text\n{text}\n```\n")
    samples = "\n".join(parts)
    write_text(reports / "samples.md", samples)

    with tracking.resume_run("charlm", model_dir / "run_id.txt"):
        mlflow.log_metrics({f"test_{k}": float(x) for k, x in m.items()})
        mlflow.log_text(samples, "samples.md")
        mlflow.log_artifact(str(reports / "curves.csv"))
        serving.log_pyfunc(model_dir / "model.keras", model_dir / "vocab.json",
                           registered_model_name=serving.MODEL_NAME)
    log.info("test: %s (keras %s)", m, keras.__version__)


def _load_model(path: Path):
    import keras

    try:
        return keras.models.load_model(path)
    except (OSError, ValueError) as e:
        raise PipelineError(f"cannot load model {path}: {e}") from None


@command("charlm", "generate",
         arg("--prompt", default="The island", help="text to start from (default: %(default)s)"),
         arg("--length", type=int, default=500, help="characters to add (default: %(default)s)"),
         arg("--temperature", type=float, default=1.0,
             help="divides the logits: < 1 safer, > 1 wilder; it is 1 / the textbook's scale "
                  "factor (default: %(default)s)"),
         arg("--seed", type=int, default=0, help="same seed, same text (default: %(default)s)"),
         arg("--top-k", dest="top_k", type=int, default=None,
             help="sample among the k most likely characters only"),
         arg("--model-uri", "--model", dest="model",
             default="models:/mysterious-island-charlm@champion",
             help="an MLflow model URI, or a .keras file with vocab.json beside it such as "
                  "models/charlm/model.keras (default: %(default)s)"),
         help="write text from a prompt, one recurrent step per new character",
         needs_params=False)
def generate_text(prompt: str, length: int, temperature: float, seed: int,
                  top_k: int | None, model: str) -> None:
    if length < 0 or temperature <= 0 or not prompt or (top_k is not None and top_k < 1):
        raise PipelineError("need a non-empty prompt, length >= 0, temperature > 0, top-k >= 1")
    if ":/" in model:
        import mlflow
        import pandas as pd

        from rnnpipe import tracking

        tracking.setup("charlm")
        row = {"prompt": prompt, "length": length, "temperature": temperature, "seed": seed}
        if top_k:
            row["top_k"] = top_k
        try:
            out = mlflow.pyfunc.load_model(model).predict(pd.DataFrame([row]))
        except mlflow.exceptions.MlflowException as e:
            raise PipelineError(e.message) from None
        print(out["text"].iloc[0])
        return
    from rnnpipe.models.generate import Generator

    path = Path(model)
    gen = Generator(_load_model(path), Vocabulary.load(path.parent / "vocab.json"))
    print(gen.generate(prompt, length, temperature, seed=seed, top_k=top_k))
