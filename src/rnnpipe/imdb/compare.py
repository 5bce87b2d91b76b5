"""compare: the tuned recurrent model against a Transformer (the lecture's last section), both
trained on the same splits with the same budget (imdb.compare), scored on test. The recurrent
row is the train stage's model after the epochs this stage would run, when train used the same
batches, seed and data (the same computation, so the same bits); otherwise it trains here."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from rnnpipe.core import compare as report
from rnnpipe.core import hparams as hparams_file
from rnnpipe.core.commands import arg, command
from rnnpipe.core.params import Params
from rnnpipe.core.vocab import Vocabulary
from rnnpipe.imdb.inputs import dataset, read_split
from rnnpipe.imdb.metrics import best_threshold, binary_metrics
from rnnpipe.imdb.params import SentimentModelParams

log = logging.getLogger(__name__)

CHECKPOINTS = Path(".checkpoints/imdb_compare")
STAGE = "imdb_compare"
COLUMNS = {
    "model": "model",
    "test_accuracy": "test accuracy",
    "valid_accuracy": "valid accuracy",
    "test_roc_auc": "test ROC AUC",
    "params": "parameters",
    "epochs": "epochs",
    "train_minutes": "training minutes",
    "reviews_per_second": "reviews / s (test)",
}


@command(
    "imdb",
    "compare",
    arg("processed", type=Path, help="folder with train/valid/test .npz"),
    arg("vocab", type=Path, help="vocab.json"),
    arg("hparams", type=Path, help="models/imdb/hparams.json (the hparams stage's)"),
    arg("vectors", type=Path, help="models/imdb/word_vectors.npy (the embed stage's)"),
    arg("out", type=Path, help="reports/imdb: compare.json, compare.md"),
    arg(
        "--train-epochs",
        type=Path,
        help="models/imdb/epochs (the train stage's weights after each epoch): the recurrent "
        "row is taken from it when its training is the same",
    ),
    arg(
        "--train-report",
        type=Path,
        default=Path("reports/imdb/train.json"),
        help="the train stage's report, for the minutes of its epochs (default: %(default)s)",
    ),
    help="train the tuned recurrent model and a Transformer with the same budget; "
    "compare test accuracy, size, training time and scoring speed",
)
def compare(
    params: Params,
    processed: Path,
    vocab: Path,
    hparams: Path,
    vectors: Path,
    out: Path,
    train_epochs: Path | None = None,
    train_report: Path = Path("reports/imdb/train.json"),
) -> None:
    from rnnpipe.core import tracking, training
    from rnnpipe.imdb.model import build_sentiment_model, predict_proba, read_vectors

    c = params.imdb.compare
    tuned = hparams_file.read(hparams)
    hps = {
        row: report.row_hparams(tuned, c, row, SentimentModelParams, "imdb.compare")
        for row in report.ROWS
    }  # every row checked before the first one trains
    v = Vocabulary.load(vocab)
    splits = {s: read_split(processed, s) for s in ("train", "valid", "test")}
    max_len = splits["train"]["ids"].shape[1]
    n = training.batches(dataset(splits["train"], c.batch_size, max_len))
    report.announce(
        "imdb", hps, dict.fromkeys(hps, n), f"{len(splits['train']['ids']):,} reviews", c, out
    )
    rows = {}
    for row, hp in hps.items():
        weights = read_vectors(vectors, len(v)) if hp["pretrained"] else None
        training.set_seed(params.seed)
        model = build_sentiment_model(hp, len(v), weights)
        log.info("%s: %s, %d parameters", row, report.describe(hp), model.count_params())
        result = None
        if row == "recurrent" and train_epochs is not None:
            # imdb_train's fit (train.py): the settings every project shares, and these
            wanted = report.train_settings(hp, params.seed, len(v), processed / "train.npz")
            wanted |= {
                "vectors": tracking.file_sha256(vectors) if weights is not None else None,
                "train.batch_size": c.batch_size,
                "train.crop": 0.0,
            }
            result = report.from_train(model, train_epochs, train_report, c, wanted)
        if result is None:
            result = report.fit(
                model,
                dataset(splits["train"], c.batch_size, max_len, seed=params.seed),
                dataset(splits["valid"], c.batch_size, max_len),
                c,
                seed=params.seed,
                checkpoint_dir=CHECKPOINTS / row,
                settings={"hp": hp, "compare": c.model_dump(), "vocab": len(v)},
                callbacks=training.schedule(hp),
            )
        valid = predict_proba(model, splits["valid"]["ids"], splits["valid"]["lengths"])
        t = time.perf_counter()
        test = predict_proba(model, splits["test"]["ids"], splits["test"]["lengths"])
        seconds = time.perf_counter() - t
        # the decision threshold from validation, as the evaluate stage chooses it
        threshold = best_threshold(splits["valid"]["labels"], valid)
        m_valid = binary_metrics(splits["valid"]["labels"].astype(int), valid, threshold)
        m_test = binary_metrics(splits["test"]["labels"].astype(int), test, threshold)
        rows[row] = {
            "model": report.describe(hp),
            "test_accuracy": m_test["accuracy"],
            "valid_accuracy": m_valid["accuracy"],
            "test_roc_auc": m_test["roc_auc"],
            "test_loss": m_test["loss"],
            "params": model.count_params(),
            "reviews_per_second": round(len(test) / seconds, 1),
            **result,
            "hparams": hp,
        }
        log.info(
            "%s: test accuracy %.4f in %.1f min", row, m_test["accuracy"], result["train_minutes"]
        )
    budget = (
        f"Both trained on the same splits with the same budget: at most {c.epochs} "
        f"epochs of batch {c.batch_size}, early stopping with patience {c.patience} on "
        "validation loss"
        + (f", at most {c.max_minutes:g} minutes each" if c.max_minutes else "")
        + ". Test accuracy at the threshold chosen on validation; reviews / s: scoring "
        "the test split."
    )
    if rows["recurrent"]["from_train_stage"]:
        budget += (
            " The recurrent row is the train stage's model after those epochs, not trained "
            "again: the same model, batches, seed and data give the same weights; its minutes "
            "are those epochs' minutes in the train stage."
        )
    report.write_report("imdb", rows, COLUMNS, out, budget)
    report.log_run("imdb", STAGE, rows, c.model_dump())
