"""train: the character-level language model (truncated BPTT or windows), early-stopped on the
validation text."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from rnnpipe.charlm.feed import load_ids, make_feed
from rnnpipe.charlm.model import bits
from rnnpipe.core import hparams as hparams_file
from rnnpipe.core import progress
from rnnpipe.core.atomic import atomic_path, write_json
from rnnpipe.core.commands import arg, command
from rnnpipe.core.params import Params
from rnnpipe.core.saving import write_model
from rnnpipe.core.vocab import Vocabulary

log = logging.getLogger(__name__)

CHECKPOINTS = Path(".checkpoints/charlm")
STAGE = "charlm_train"
REPORT = Path("reports/charlm/train.json")


@command(
    "charlm",
    "train",
    arg("processed", type=Path, help="folder of train/valid/test.npz"),
    arg("vocab", type=Path, help="vocab.json"),
    arg("hparams", type=Path, help="models/charlm/hparams.json (the hparams stage's)"),
    arg("out", type=Path, help="models/charlm: model.keras, vocab.json, history.json"),
    arg(
        "--report",
        type=Path,
        default=REPORT,
        help="epochs, best epoch, batches and minutes (default: %(default)s)",
    ),
    help="train the character-level language model (windows or truncated BPTT)",
)
def train(
    params: Params, processed: Path, vocab: Path, hparams: Path, out: Path, report: Path = REPORT
) -> None:
    import keras
    import mlflow

    from rnnpipe.charlm import warmup
    from rnnpipe.core import tracking, training

    p = params.charlm.train
    hp = hparams_file.read(hparams)
    v = Vocabulary.load(vocab)
    train_ids, valid_ids = load_ids(processed / "train.npz"), load_ids(processed / "valid.npz")
    training.set_seed(params.seed)
    feed = make_feed(train_ids, valid_ids, p.feed, p.batch_size, hp["seq_length"])
    model = feed.build(hp, len(v))
    n = training.batches(feed.fit_kwargs["x"], p.batch_size)
    progress.announce(
        "charlm train",
        f"up to {p.epochs} epochs of {n} batches (batch "
        f"{p.batch_size}, {len(train_ids):,} characters, {p.feed} feed)",
        report,
        count="epochs",
    )
    run_settings = {
        "feed": p.feed,
        "batch_size": p.batch_size,
        "epochs": p.epochs,
        "patience": p.patience,
        "warmup": p.warmup,
    }
    settings = {
        "train": run_settings,
        "hp": hp,
        "seed": params.seed,
        "vocab": len(v),
        "data": tracking.file_sha256(processed / "train.npz"),
        "backend": keras.backend.backend(),
    }
    resume_id = training.resumable_run_id(CHECKPOINTS, settings)
    with tracking.train_run("charlm", STAGE, f"charlm-{hp['cell']}-{p.feed}", resume_id) as run:
        if resume_id is None:
            mlflow.log_params(
                tracking.flatten(
                    {
                        "seed": params.seed,
                        "train": run_settings,
                        "model": hp,
                        "vocab_size": len(v),
                        "train_chars": len(train_ids),
                        "valid_chars": len(valid_ids),
                    }
                )
            )
            mlflow.set_tag("device", tracking.device_name())
            tracking.log_model_summary(model)
            tracking.log_data({str(processed / "train.npz"): processed / "train.npz"})
            tracking.log_data(
                {str(processed / "valid.npz"): processed / "valid.npz"}, context="validation"
            )
        t0, timings = time.perf_counter(), []
        kwargs = dict(feed.fit_kwargs)
        model, history = training.fit(
            model,
            kwargs.pop("x"),
            kwargs.pop("validation_data"),
            epochs=p.epochs,
            patience=p.patience,
            checkpoint_dir=CHECKPOINTS,
            settings=settings,
            run_id=run.info.run_id,
            snapshots=out / "epochs",  # the compare stage's recurrent row reads them
            timings=timings,
            callbacks=[
                *feed.callbacks,
                tracking.MlflowMetrics(transform=bits),
                *warmup.schedule(hp, p.warmup, n),
            ],
            **kwargs,
        )
        seconds = time.perf_counter() - t0
        mlflow.log_metric("train_seconds", seconds)
        with atomic_path(out / "model.keras") as tmp:
            write_model(model, tmp)  # same weights, same bytes
            # evaluate and register find this run by the model file's hash
            mlflow.set_tag(tracking.MODEL_TAG, tracking.file_sha256(tmp))
        v.save(out / "vocab.json")
        write_json(out / "history.json", {"hparams": hp, "feed": p.feed, "epochs": history})
        write_json(report, training.report(history, n, p.batch_size, seconds, timings))
    training.clear_checkpoints(CHECKPOINTS)
    log.info("trained in %.0f s; best val_loss %.4f", seconds, min(e["val_loss"] for e in history))
