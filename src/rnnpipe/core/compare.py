"""The compare stages' shared part: the hyperparameters of each row, training with the same
budget, and the report (compare.json, a DVC metric; compare.md, a table; an MLflow run)."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

from rnnpipe.core import progress
from rnnpipe.core.atomic import write_json, write_text
from rnnpipe.core.errors import PipelineError
from rnnpipe.core.params import CompareParams

log = logging.getLogger(__name__)

ROWS = ("recurrent", "attention")


def row_hparams(tuned: dict, compare: CompareParams, row: str, model_cls, key: str) -> dict:
    """hparams.json (the tuned recurrent model) with the row's keys from params laid over it;
    the attention row is a Transformer. Checked by the model's schema; `key` names the params
    section in errors."""
    overrides = getattr(compare, row)
    if row == "attention":
        overrides = {"cell": "Transformer", **overrides}
    hp = tuned | overrides
    if row == "recurrent" and hp["cell"] == "Transformer":
        raise PipelineError(
            f"the tuned model is a Transformer: give {key}.recurrent.cell "
            "(SimpleRNN, LSTM or GRU) for the recurrent row"
        )
    try:
        return model_cls(**hp).model_dump()
    except ValueError as e:  # pydantic's ValidationError is a ValueError
        raise PipelineError(f"{key}.{row}: {e}") from None


def fit(
    model,
    train,
    valid,
    compare: CompareParams,
    *,
    seed: int,
    checkpoint_dir: Path,
    settings: dict,
    callbacks=(),
    **fit_kwargs,
) -> dict:
    """Train `model` within the budget (epochs, patience, max_minutes); the logs of its
    epochs, its minutes and whether the time budget cut it."""
    from rnnpipe.core import training

    limit = training.TimeLimit(compare.max_minutes)
    t = time.perf_counter()
    model, history = training.fit(
        model,
        train,
        valid,
        epochs=compare.epochs,
        patience=compare.patience,
        checkpoint_dir=checkpoint_dir,
        settings=settings | {"seed": seed},
        callbacks=[*callbacks, limit],
        **fit_kwargs,
    )
    minutes = (time.perf_counter() - t) / 60
    training.clear_checkpoints(checkpoint_dir)
    if limit.cut:
        log.warning(
            "compare.max_minutes (%g) stopped this model after %d of %d epochs: the "
            "comparison now depends on this machine's speed (max_minutes: null for one "
            "that does not)",
            compare.max_minutes,
            len(history),
            compare.epochs,
        )
    return {
        "epochs": len(history),
        "train_minutes": round(minutes, 2),
        "cut_by_budget": limit.cut,
        "from_train_stage": False,
        "history": history,
    }


def stop_point(history: list[dict], epochs: int, patience: int) -> tuple[int, int] | None:
    """Where `fit` (Keras' EarlyStopping on val_loss, best weights restored) ends when its
    epochs log `history`: (epochs run, the epoch whose weights it ends with, both counted from
    1); None when the history ends before that is known."""
    best, best_epoch, wait = math.inf, 0, 0
    for i, logs in enumerate(history[:epochs]):
        wait += 1
        if logs["val_loss"] < best:
            best, best_epoch, wait = logs["val_loss"], i + 1, 0
        elif wait >= patience and i > 0:
            return i + 1, best_epoch
    return (epochs, best_epoch) if len(history) >= epochs else None


def train_settings(hp: dict, seed: int, vocab_size: int, train_file: Path) -> dict:
    """The settings of the train stage's fit that every project's row must share with it to
    be that fit: the model, the seed, the vocabulary's size and the training data."""
    from rnnpipe.core import tracking

    return {
        "hp": hp,
        "seed": seed,
        "vocab": vocab_size,
        "data": tracking.file_sha256(train_file),
    }


def from_train(
    model, snapshots: Path, train_report: Path, compare: CompareParams, wanted: dict
) -> dict | None:
    """The recurrent row as the train stage already trained it: when train's fit had the
    settings `wanted` (dotted keys: `train_settings` and the project's own, e.g. its batch
    size), its first epochs are the ones this stage would run, to the bit. Then `model` (built
    as train built it) gets the weights this stage would end with, and the row's training comes
    back as `fit` returns it; None, saying why, when it must train here."""
    from rnnpipe.core import training

    if compare.max_minutes is not None:
        log.info("recurrent row: trained here (max_minutes makes it depend on the machine)")
        return None
    try:
        run = json.loads((snapshots / "fit.json").read_text())
        minutes = json.loads(train_report.read_text())["epoch_minutes"]
    except (OSError, ValueError, KeyError) as e:
        log.info("recurrent row: trained here (no epochs of the train stage to read: %s)", e)
        return None
    differ = [key for key, value in wanted.items() if _get(run["settings"], key) != value]
    if differ:
        log.info(
            "recurrent row: trained here (the train stage's %s differ%s)",
            ", ".join(differ),
            "s" if len(differ) == 1 else "",
        )
        return None
    history = run["history"]
    end = stop_point(history, compare.epochs, compare.patience)
    if end is None or len(minutes) < end[0]:
        log.info("recurrent row: trained here (the train stage stopped before it would)")
        return None
    epochs, best = end
    log.info(
        "recurrent row: the train stage's model after epoch %d of %d (same model, batches, "
        "seed and data: the epochs this stage would run)",
        best,
        epochs,
    )
    training.load_snapshot(model, snapshots, best)
    return {
        "epochs": epochs,
        "train_minutes": round(sum(minutes[:epochs]), 2),
        "cut_by_budget": False,
        "from_train_stage": True,
        "history": history[:epochs],
    }


def _get(tree: dict, dotted: str):
    for key in dotted.split("."):
        tree = tree.get(key) if isinstance(tree, dict) else None
    return tree


def announce(
    project: str, hps: dict, batches: dict, data: str, compare: CompareParams, out: Path
) -> str:
    """The stage's first line: each row's model and batches per epoch, and the last run's
    training minutes (summed over the rows of out/compare.json)."""
    models = ", ".join(
        f"{row} = {describe(hp)} ({batches[row]} batches/epoch)" for row, hp in hps.items()
    )
    return progress.announce(
        f"{project} compare",
        f"{len(hps)} models, up to {compare.epochs} epochs each (batch "
        f"{compare.batch_size}, {data}): {models}",
        out / "compare.json",
        key=lambda r: sum(row["train_minutes"] for row in _trained(r)),
        count=lambda r: f"{len(_trained(r))} of {len(r)} models trained here",
    )


def _trained(rows: dict) -> list[dict]:
    """The rows of a compare.json that the stage trained (not taken from train)."""
    return [row for row in rows.values() if not row.get("from_train_stage")]


def describe(hp: dict) -> str:
    """A short name of a model: 'BiGRU-128 x 1' or 'Transformer-128, 4 heads x 2'."""
    if hp["cell"] == "Transformer":
        return f"Transformer-{hp['units']}, {hp['heads']} heads x {hp['layers']}"
    bi = "Bi" if hp.get("bidirectional") else ""
    return f"{bi}{hp['cell']}-{hp['units']} x {hp['layers']}"


def _cell(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_report(project: str, rows: dict, columns: dict, out: Path, note: str) -> None:
    """out/compare.json (rows without their hparams and history) and out/compare.md: a
    table with one row per model, `columns` mapping a row key to its header."""
    write_json(
        out / "compare.json",
        {
            name: {k: v for k, v in row.items() if k not in ("hparams", "history")}
            for name, row in rows.items()
        },
    )
    lines = [
        f"# {project}: recurrent vs. self-attention\n",
        note,
        "",
        "| " + " | ".join(["row", *columns.values()]) + " |",
        "| " + " | ".join(["---"] * (len(columns) + 1)) + " |",
    ]
    for name, row in rows.items():
        lines.append("| " + " | ".join([name, *(_cell(row[k]) for k in columns)]) + " |")
    lines += ["", "Hyperparameters:", ""]
    for name, row in rows.items():
        lines.append(f"- {name}: `{row['hparams']}`")
    write_text(out / "compare.md", "\n".join(lines) + "\n")


def log_run(project: str, stage: str, rows: dict, settings: dict) -> None:
    """One MLflow run for the comparison, a child run per row with its hparams and figures."""
    import mlflow

    from rnnpipe.core import tracking

    tracking.setup(project)
    with mlflow.start_run(
        run_name=f"{project}-compare", tags={"stage": stage, **tracking.source_tags()}
    ):
        mlflow.log_params(tracking.flatten({"compare": settings}))
        for name, row in rows.items():
            with mlflow.start_run(
                run_name=f"{project}-compare-{name}",
                nested=True,
                tags={"stage": stage, "row": name},
            ):
                mlflow.log_params(tracking.flatten({"model": row["hparams"]}))
                for e in row["history"]:
                    mlflow.log_metrics(
                        {k: float(v) for k, v in e.items() if k != "epoch"}, step=int(e["epoch"])
                    )
                mlflow.log_metrics(
                    {
                        k: float(v)
                        for k, v in row.items()
                        if isinstance(v, int | float) and not isinstance(v, bool)
                    }
                )
