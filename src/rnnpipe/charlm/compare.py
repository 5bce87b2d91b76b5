"""compare: the tuned recurrent char LM against a causal Transformer (the lecture's last
section), both trained with train's feed on the same text with the same budget (charlm.compare),
scored on the test text and timed generating text. The recurrent row is the train stage's model
after the epochs this stage would run, when train used the same feed, batches, seed and data
(the same computation, so the same bits); otherwise it trains here."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from rnnpipe.charlm.feed import load_ids, make_feed
from rnnpipe.charlm.params import CharlmModelParams
from rnnpipe.core import compare as report
from rnnpipe.core import hparams as hparams_file
from rnnpipe.core.commands import arg, command
from rnnpipe.core.params import Params
from rnnpipe.core.vocab import Vocabulary

log = logging.getLogger(__name__)

CHECKPOINTS = Path(".checkpoints/charlm_compare")
STAGE = "charlm_compare"
COLUMNS = {
    "model": "model",
    "test_loss": "test loss (nats/char)",
    "test_bits_per_char": "test bits/char",
    "valid_loss": "valid loss",
    "params": "parameters",
    "epochs": "epochs",
    "train_minutes": "training minutes",
    "chars_per_second": "generated chars / s",
}


@command(
    "charlm",
    "compare",
    arg("processed", type=Path, help="folder of train/valid/test.npz"),
    arg("vocab", type=Path, help="vocab.json"),
    arg("hparams", type=Path, help="models/charlm/hparams.json (the hparams stage's)"),
    arg("out", type=Path, help="reports/charlm: compare.json, compare.md"),
    arg(
        "--train-epochs",
        type=Path,
        help="models/charlm/epochs (the train stage's weights after each epoch): the "
        "recurrent row is taken from it when its training is the same",
    ),
    arg(
        "--train-report",
        type=Path,
        default=Path("reports/charlm/train.json"),
        help="the train stage's report, for the minutes of its epochs (default: %(default)s)",
    ),
    help="train the tuned recurrent char LM and a causal Transformer with the same "
    "budget; compare held-out loss, size, training time and generation speed",
)
def compare(
    params: Params,
    processed: Path,
    vocab: Path,
    hparams: Path,
    out: Path,
    train_epochs: Path | None = None,
    train_report: Path = Path("reports/charlm/train.json"),
) -> None:
    import keras

    from rnnpipe.charlm import sampler, warmup
    from rnnpipe.core import training

    c, feed_kind = params.charlm.compare, params.charlm.train.feed
    tuned = hparams_file.read(hparams)
    hps = {
        row: report.row_hparams(tuned, c, row, CharlmModelParams, "charlm.compare")
        for row in report.ROWS
    }  # every row checked before the first one trains
    v = Vocabulary.load(vocab)
    ids = {part: load_ids(processed / f"{part}.npz") for part in ("train", "valid", "test")}
    feeds = {
        row: make_feed(ids["train"], ids["valid"], feed_kind, c.batch_size, hp["seq_length"])
        for row, hp in hps.items()
    }
    batches = {row: training.batches(f.fit_kwargs["x"], c.batch_size) for row, f in feeds.items()}
    report.announce(
        "charlm",
        hps,
        batches,
        f"{len(ids['train']):,} characters, {feed_kind} feed",
        c,
        out,
    )
    rows = {}
    for row, hp in hps.items():
        feed = feeds[row]
        training.set_seed(params.seed)
        model = feed.build(hp, len(v))
        log.info("%s: %s, %d parameters", row, report.describe(hp), model.count_params())
        result = None
        if row == "recurrent" and train_epochs is not None:
            # charlm_train's fit (train.py): the settings every project shares, and these
            wanted = report.train_settings(hp, params.seed, len(v), processed / "train.npz")
            wanted |= {
                "backend": keras.backend.backend(),
                "train.feed": feed_kind,
                "train.batch_size": c.batch_size,
                "train.warmup": params.charlm.train.warmup,
            }
            result = report.from_train(model, train_epochs, train_report, c, wanted)
        if result is None:
            kwargs = dict(feed.fit_kwargs)
            result = report.fit(
                model,
                kwargs.pop("x"),
                kwargs.pop("validation_data"),
                c,
                seed=params.seed,
                checkpoint_dir=CHECKPOINTS / row,
                settings={
                    "hp": hp,
                    "compare": c.model_dump(),
                    "feed": feed_kind,
                    "vocab": len(v),
                },
                # train's warm-up for both rows: the same schedule, and the recurrent row
                # is then train's first epochs when it runs there
                callbacks=[
                    *feed.callbacks,
                    *warmup.schedule(hp, params.charlm.train.warmup, batches[row]),
                ],
                **kwargs,
            )
        # the evaluate stage's protocol: each part read as one stream from its start
        m = {
            part: sampler.metrics(sampler.stream_loss(model, ids[part]))
            for part in ("valid", "test")
        }
        generator = sampler.Generator(model, v)
        t = time.perf_counter()
        generator.generate(c.prompt, c.sample_length, 1.0, seed=params.seed)
        seconds = time.perf_counter() - t
        rows[row] = {
            "model": report.describe(hp),
            "test_loss": m["test"]["loss"],
            "test_bits_per_char": m["test"]["bits_per_char"],
            "valid_loss": m["valid"]["loss"],
            "params": model.count_params(),
            "chars_per_second": round(c.sample_length / seconds, 1),
            **result,
            "hparams": hp,
        }
        log.info(
            "%s: test loss %.4f nats/char in %.1f min",
            row,
            m["test"]["loss"],
            result["train_minutes"],
        )
    budget = (
        f"Both trained with the {feed_kind} feed on the same text with the same budget: "
        f"at most {c.epochs} epochs of batch {c.batch_size}, early stopping with patience "
        f"{c.patience} on validation loss"
        + (f", at most {c.max_minutes:g} minutes each" if c.max_minutes else "")
        + ". Held-out loss as the evaluate stage reads it (the recurrent model carries "
        "its state through the whole text; the Transformer reads it in overlapping "
        "windows of its context). Generation: "
        f"{c.sample_length} characters at temperature 1 from {c.prompt!r}, one step "
        "per character (state carried / key-value cache)."
    )
    if rows["recurrent"]["from_train_stage"]:
        budget += (
            " The recurrent row is the train stage's model after those epochs, not trained "
            "again: the same model, batches, seed and data give the same weights; its minutes "
            "are those epochs' minutes in the train stage."
        )
    report.write_report("charlm", rows, COLUMNS, out, budget)
    report.log_run("charlm", STAGE, rows, c.model_dump())
