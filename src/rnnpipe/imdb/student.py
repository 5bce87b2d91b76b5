"""student: self-training's model, the one evaluate scores and register serves. train's model,
hyperparameters and schedule, built afresh, learns from the training reviews and the unlabelled
reviews the teach stage labelled with a teacher's probabilities, in one shuffled stream, for
imdb.student.epochs epochs (early-stopped on the validation split, as train)."""

from __future__ import annotations

from pathlib import Path

from rnnpipe.core.commands import arg, command
from rnnpipe.core.params import Params
from rnnpipe.imdb.train import train

REPORT = Path("reports/imdb/student.json")


@command(
    "imdb",
    "student",
    arg("processed", type=Path, help="folder with train/valid .npz"),
    arg("vocab", type=Path, help="vocab.json"),
    arg("hparams", type=Path, help="models/imdb/hparams.json (the hparams stage's)"),
    arg("vectors", type=Path, help="models/imdb/word_vectors.npy (the embed stage's)"),
    arg("soft_labels", type=Path, help="data/processed/imdb/unsup_soft.npz (the teach stage's)"),
    arg("outdir", type=Path, help="models/imdb/student: model.keras, vocab.json, history.json"),
    arg(
        "--report",
        type=Path,
        default=REPORT,
        help="epochs, best epoch, batches and minutes (default: %(default)s)",
    ),
    help="train the sentiment RNN on the training and the soft-labelled unlabelled reviews",
)
def student(
    params: Params,
    processed: Path,
    vocab: Path,
    hparams: Path,
    vectors: Path,
    soft_labels: Path,
    outdir: Path,
    report: Path = REPORT,
) -> None:
    train(params, processed, vocab, hparams, vectors, outdir, report, soft_labels=soft_labels)
