"""train: the sentiment RNN on the training split, early-stopped on the validation split."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from rnnpipe.core import hparams as hparams_file
from rnnpipe.core import progress
from rnnpipe.core.atomic import atomic_path, write_json
from rnnpipe.core.commands import arg, command
from rnnpipe.core.params import Params
from rnnpipe.core.saving import write_model
from rnnpipe.core.vocab import Vocabulary
from rnnpipe.imdb.inputs import dataset, read_split

log = logging.getLogger(__name__)

CHECKPOINTS = Path(".checkpoints/imdb")
STAGE = "imdb_train"
REPORT = Path("reports/imdb/train.json")


@command(
    "imdb",
    "train",
    arg("processed", type=Path, help="folder with train/valid .npz"),
    arg("vocab", type=Path, help="vocab.json"),
    arg("hparams", type=Path, help="models/imdb/hparams.json (the hparams stage's)"),
    arg(
        "vectors",
        type=Path,
        help="models/imdb/word_vectors.npy (the embed stage's), "
        "read when the hyperparameters say pretrained",
    ),
    arg("outdir", type=Path, help="models/imdb: model.keras, vocab.json, history.json"),
    arg(
        "--report",
        type=Path,
        default=REPORT,
        help="epochs, best epoch, batches and minutes (default: %(default)s)",
    ),
    help="train the sentiment RNN, early-stopping on validation loss; log to MLflow",
)
def train(
    params: Params,
    processed: Path,
    vocab: Path,
    hparams: Path,
    vectors: Path,
    outdir: Path,
    report: Path = REPORT,
) -> None:
    import mlflow

    from rnnpipe.core import tracking, training
    from rnnpipe.imdb.model import build_sentiment_model, read_vectors

    p = params.imdb.train
    hp = hparams_file.read(hparams)
    v = Vocabulary.load(vocab)
    tr, va = read_split(processed, "train"), read_split(processed, "valid")
    max_len = tr["ids"].shape[1]
    weights = read_vectors(vectors, len(v)) if hp.get("pretrained") else None
    training.set_seed(params.seed)
    model = build_sentiment_model(hp, len(v), weights)
    train_ds = dataset(
        tr, p.batch_size, max_len, seed=params.seed, crop=p.crop, crop_min_tokens=p.crop_min_tokens
    )
    n = training.batches(train_ds)
    progress.announce(
        "imdb train",
        f"up to {p.epochs} epochs of {n} batches (batch "
        f"{p.batch_size}, {len(tr['ids']):,} reviews)",
        report,
        count="epochs",
    )
    run_settings = {
        "batch_size": p.batch_size,
        "epochs": p.epochs,
        "patience": p.patience,
        "crop": p.crop,
        "crop_min_tokens": p.crop_min_tokens,
    }
    settings = {
        "hp": hp,
        "train": run_settings,
        "seed": params.seed,
        "vocab": len(v),
        "data": tracking.file_sha256(processed / "train.npz"),
        "vectors": tracking.file_sha256(vectors) if weights is not None else None,
    }
    resume_id = training.resumable_run_id(CHECKPOINTS, settings)
    with tracking.train_run("imdb", STAGE, "imdb-train", resume_id) as run:
        if resume_id is None:
            mlflow.log_params(
                tracking.flatten({"seed": params.seed, "train": run_settings, "model": hp})
            )
            mlflow.log_params(
                {
                    "vocab_size": len(v),
                    "n_train": len(tr["ids"]),
                    "n_valid": len(va["ids"]),
                    "max_len": max_len,
                }
            )
            mlflow.set_tag("device", tracking.device_name())
            tracking.log_model_summary(model)
            tracking.log_data({str(processed / "train.npz"): processed / "train.npz"})
            tracking.log_data(
                {str(processed / "valid.npz"): processed / "valid.npz"}, context="validation"
            )
            if weights is not None:
                tracking.log_data({str(vectors): vectors}, context="pretraining")
        t, timings = time.perf_counter(), []
        model, history = training.fit(
            model,
            train_ds,
            dataset(va, p.batch_size, max_len),
            epochs=p.epochs,
            patience=p.patience,
            checkpoint_dir=CHECKPOINTS,
            settings=settings,
            run_id=run.info.run_id,
            snapshots=outdir / "epochs",  # the compare stage's recurrent row reads them
            timings=timings,
            callbacks=[tracking.MlflowMetrics(), *training.schedule(hp)],
        )
        seconds = time.perf_counter() - t
        mlflow.log_metric("train_seconds", seconds)
        with atomic_path(outdir / "model.keras") as tmp:
            write_model(model, tmp)  # same weights, same bytes
            # evaluate and register find this run by the model file's hash
            mlflow.set_tag(tracking.MODEL_TAG, tracking.file_sha256(tmp))
        with atomic_path(outdir / "vocab.json") as tmp:
            shutil.copyfile(vocab, tmp)
        write_json(outdir / "history.json", history)
        write_json(report, training.report(history, n, p.batch_size, seconds, timings))
        log.info("run %s: best val_loss %.4f", run.info.run_id, min(h["val_loss"] for h in history))
    training.clear_checkpoints(CHECKPOINTS)
