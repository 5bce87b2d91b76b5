"""train: the sentiment RNN on the training split, early-stopped on the validation split.

With soft_labels it trains the student of self-training (`rnnpipe imdb student`, student.py):
the same model, hyperparameters and schedule, built afresh, learning from the training reviews
and the unlabelled reviews the teach stage labelled with its probabilities, in one stream.
"""

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
from rnnpipe.imdb.inputs import dataset, read_split, with_soft_labels

log = logging.getLogger(__name__)

CHECKPOINTS = Path(".checkpoints/imdb")
STAGE = "imdb_train"
STUDENT = "imdb_student"
STUDENT_CHECKPOINTS = Path(".checkpoints/imdb_student")
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
    soft_labels: Path | None = None,  # the student's (student.py)
) -> None:
    import mlflow

    from rnnpipe.core import tracking, training
    from rnnpipe.imdb.model import build_sentiment_model, read_vectors

    p = params.imdb.train
    epochs = p.epochs if soft_labels is None else params.imdb.student.epochs
    student = soft_labels is not None
    stage, checkpoints = (STUDENT, STUDENT_CHECKPOINTS) if student else (STAGE, CHECKPOINTS)
    hp = hparams_file.read(hparams)
    v = Vocabulary.load(vocab)
    tr, va = read_split(processed, "train"), read_split(processed, "valid")
    max_len = tr["ids"].shape[1]
    labelled = len(tr["ids"])
    if student:
        tr = with_soft_labels(tr, read_split(soft_labels.parent, soft_labels.stem), len(v))
    weights = read_vectors(vectors, len(v)) if hp.get("pretrained") else None
    training.set_seed(params.seed)
    model = build_sentiment_model(hp, len(v), weights)
    train_ds = dataset(
        tr, p.batch_size, max_len, seed=params.seed, crop=p.crop, crop_min_tokens=p.crop_min_tokens
    )
    n = training.batches(train_ds)
    progress.announce(
        "imdb student" if student else "imdb train",
        f"up to {epochs} epochs of {n} batches (batch {p.batch_size}, {len(tr['ids']):,} reviews)",
        report,
        count="epochs",
    )
    run_settings = {
        "batch_size": p.batch_size,
        "epochs": epochs,
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
    if student:
        settings["soft_labels"] = tracking.file_sha256(soft_labels)
    resume_id = training.resumable_run_id(checkpoints, settings)
    run_name = stage.replace("_", "-")
    with tracking.train_run("imdb", stage, run_name, resume_id) as run:
        if resume_id is None:
            mlflow.log_params(
                tracking.flatten({"seed": params.seed, "train": run_settings, "model": hp})
            )
            mlflow.log_params(
                {
                    "vocab_size": len(v),
                    "n_train": labelled,
                    "n_unlabelled": len(tr["ids"]) - labelled,
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
            if student:
                tracking.log_data({str(soft_labels): soft_labels}, context="self-training")
        t, timings = time.perf_counter(), []
        model, history = training.fit(
            model,
            train_ds,
            dataset(va, p.batch_size, max_len),
            epochs=epochs,
            patience=p.patience,
            checkpoint_dir=checkpoints,
            settings=settings,
            run_id=run.info.run_id,
            # the compare stage's recurrent row reads train's
            snapshots=None if student else outdir / "epochs",
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
    training.clear_checkpoints(checkpoints)
