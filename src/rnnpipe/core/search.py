"""Hyperparameter search on Keras Tuner, every trial a nested MLflow run.

The search never defines a model: `ProjectHyperModel` turns Keras Tuner's `hp` into the
project's model-params dict (the params.yaml model with the searched keys overridden) and calls
the project's own builder, the same one the train stage calls.

Keras Tuner keeps its state in `.tuner/<project>/<key>/`, where the key is a hash of everything
that defines the search (tune params, base model params, seed, data, and the package's code).
Run again after an interruption, the same key finds the finished trials and goes on; any change
starts afresh, and the state is removed once the result is written.

The model keys the search does not list in `<project>.tune.space` are fixed at their values in
`<project>.train.model` (`Task.base`). The stage writes two files: best_hparams.json (the best
trial's values of the searched keys, nothing else, since train depends on it) and a report (a
DVC metric: objective, best score, trials, minutes). The search is bounded by trials and
epochs; a time budget (`max_minutes`) is for exploration only: when it cuts the search, the
report and the MLflow run say `cut_by_budget` and the result depends on the machine's speed.

Distributed search is Keras Tuner's own: with KERASTUNER_TUNER_ID, KERASTUNER_ORACLE_IP and
KERASTUNER_ORACLE_PORT set, a process whose id contains "chief" serves the oracle (and makes the
MLflow parent run, and the result), every other one runs trials and logs them as child runs of
the chief's parent run (found by its `tune_key` tag, or RNNPIPE_TUNE_RUN_ID).
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import keras_tuner
import mlflow
import numpy as np

from rnnpipe.core import tracking
from rnnpipe.core.atomic import write_json, write_text
from rnnpipe.core.commands import arg
from rnnpipe.core.errors import PipelineError
from rnnpipe.core.params import TuneParams
from rnnpipe.core.training import schedule, settings_key, verbosity

log = logging.getLogger(__name__)

DIRECTIONS = {"val_loss": "min", "val_accuracy": "max"}
RUN_ID_ENV = "RNNPIPE_TUNE_RUN_ID"
TUNER_ROOT = Path(".tuner")  # outside DVC's outputs, which DVC deletes before a stage runs
PACKAGE = Path(__file__).resolve().parents[1]

ARGS = (
    arg("processed", type=Path, help="folder with train/valid .npz"),
    arg("vocab", type=Path, help="vocab.json"),
    arg("out", type=Path, help="best_hparams.json (written by the chief or a lone search)"),
    arg("report", type=Path, help="reports/<project>/tuning.json: the search's result"),
    arg(
        "trials",
        type=Path,
        help="reports/<project>/tuning_trials.json: one row per trial (a DVC plot)",
    ),
)
HELP = (
    "search cell type, units, clip norm (params <project>.tune) with Keras Tuner; each "
    "trial a nested MLflow run. With KERASTUNER_TUNER_ID, KERASTUNER_ORACLE_IP and "
    "KERASTUNER_ORACLE_PORT set: the chief oracle or a worker of a distributed search"
)
WORKER_WAIT_S = 300  # how long a worker waits for the chief's MLflow parent run


@dataclass
class Task:
    """What a project hands the search."""

    project: str
    build: Callable[[dict], keras.Model]  # model-params dict -> compiled model
    base: dict  # the fixed model keys: <project>.train.model less the searched ones
    # trial's model-params dict -> keyword arguments of model.fit (x, y or a dataset,
    # validation_data, batch_size, shuffle, callbacks); called at the start of every trial,
    # so that each trial sees the same batches
    data: Callable[[dict], dict]
    fingerprint: str  # of the data and its settings, so other data start a fresh search


def declare(hp: keras_tuner.HyperParameters, tune: TuneParams) -> dict:
    """Declare the search space in `hp`; returns {model key: value chosen for this trial}."""
    if not tune.space:
        raise PipelineError(
            "tune.space is empty: give at least one model key and the values "
            "to try (see params.yaml)"
        )
    values = {}
    for key, choices in tune.space.items():
        # one value: fixed (shown in every trial, not searched)
        values[key] = (
            hp.Fixed(key, choices[0]) if len(choices) == 1 else hp.Choice(key, list(choices))
        )
    return values


def search_space(tune: TuneParams) -> keras_tuner.HyperParameters:
    hp = keras_tuner.HyperParameters()
    declare(hp, tune)
    return hp


def fixed_keys(model, space: dict) -> dict:
    """The model keys the search leaves alone, at their values in `model` (the project's
    train.model). Read key by key, so that the stage's params trace names each one."""
    return {k: getattr(model, k) for k in type(model).model_fields if k not in space}


def searched(values: dict, space: dict) -> dict:
    """The searched keys of a trial's `values` (Keras Tuner's own entries such as Hyperband's
    "tuner/epochs" left out)."""
    return {k: _like(v, space[k][0]) for k, v in values.items() if k in space}


def hparams_from(values: dict, base: dict, space: dict) -> dict:
    """The full model-params dict of a trial: the fixed keys `base` and its searched ones."""
    return {**base, **searched(values, space)}


def _like(value, default):
    # Keras Tuner hands back a boolean choice as 0/1
    if isinstance(default, bool) and not isinstance(value, bool):
        return bool(value)
    return value


class ProjectHyperModel(keras_tuner.HyperModel):
    def __init__(self, task: Task, tune: TuneParams, seed: int):
        super().__init__(name=task.project)
        self.task, self.base, self.tune, self.seed = task, task.base, tune, seed

    def build(self, hp):
        hparams = hparams_from(declare(hp, self.tune), self.base, self.tune.space)
        # every trial starts from the same random state: its result depends on its
        # hyperparameters alone, and a rerun gives the same scores
        keras.utils.set_random_seed(self.seed)
        return self.task.build(hparams)

    def fit(self, hp, model, *args, **kwargs):
        hparams = hparams_from(hp.values, self.base, self.tune.space)
        data = self.task.data(hparams)
        kwargs["callbacks"] = [
            *kwargs.get("callbacks", []),
            *data.pop("callbacks", []),
            *schedule(hparams),
        ]
        return model.fit(*args, **data, **kwargs)


class Budget:
    """The search's time budget, counted across interruptions: the seconds spent are kept in
    `path` (in the search's state folder) at the end of every trial."""

    def __init__(self, path: Path, max_minutes: float | None):
        self.path, self.limit = Path(path), None if max_minutes is None else max_minutes * 60
        try:
            self.spent_before = float(self.path.read_text())
        except (OSError, ValueError):
            self.spent_before = 0.0
        self.start = time.monotonic()

    def spent(self) -> float:
        return self.spent_before + time.monotonic() - self.start

    def over(self) -> bool:
        return self.limit is not None and self.spent() >= self.limit

    def save(self) -> None:
        write_text(self.path, f"{self.spent():.1f}\n")


class StopAtBudget(keras.callbacks.Callback):
    """Ends a trial at the end of the epoch in which the budget runs out."""

    def __init__(self, budget: Budget):
        super().__init__()
        self.budget = budget

    def on_epoch_end(self, epoch, logs=None):
        if self.budget.over():
            self.model.stop_training = True


def budgeted(oracle, budget: Budget) -> None:
    """No new trial once the budget is spent: the oracle answers STOPPED, as when max_trials
    is reached (a retried trial still runs)."""
    populate = oracle.populate_space

    def populate_space(trial_id):
        if budget.over():
            log.info(
                "the search's time budget is spent (%.1f min): no new trial", budget.spent() / 60
            )
            return {"status": keras_tuner.engine.trial.TrialStatus.STOPPED}
        return populate(trial_id)

    oracle.populate_space = populate_space


class _MlflowTrials:
    """Mixin: each trial runs inside a child MLflow run of `self.parent_run_id`, and stops at
    the end of the epoch in which `self.budget` runs out."""

    parent_run_id: str
    objective_name: str
    budget: Budget

    def run_trial(self, trial, *args, **kwargs):
        values = dict(trial.hyperparameters.values)
        kwargs["callbacks"] = [
            *kwargs.get("callbacks", []),
            tracking.MlflowMetrics(),
            StopAtBudget(self.budget),
        ]
        with _trial_run(self.parent_run_id, trial.trial_id, self.tuner_id):
            mlflow.log_params(values)
            histories = super().run_trial(trial, *args, **kwargs)
            scores = [
                h.history[self.objective_name]
                for h in histories
                if self.objective_name in h.history
            ]
            if scores:
                best = min if DIRECTIONS[self.objective_name] == "min" else max
                mlflow.log_metric("score", float(np.mean([best(s) for s in scores])))
            mlflow.log_metric("epochs", max((len(h.epoch) for h in histories), default=0))
            if self.budget.over():
                mlflow.set_tag("cut_by_budget", "true")
        self.budget.save()
        return histories

    def _configure_tensorboard_dir(self, callbacks, trial, execution=0):
        # Keras Tuner 1.4 imports tensorboard on every trial under TensorFlow, even without a
        # TensorBoard callback; TensorFlow 2.21 no longer installs it
        if any(type(c).__name__ == "TensorBoard" for c in callbacks):
            super()._configure_tensorboard_dir(callbacks, trial, execution)


class RandomTuner(_MlflowTrials, keras_tuner.RandomSearch):
    pass


class BayesianTuner(_MlflowTrials, keras_tuner.BayesianOptimization):
    pass


class HyperbandTuner(_MlflowTrials, keras_tuner.Hyperband):
    pass


def _trial_run(parent_run_id: str, trial_id: str, tuner_id: str) -> mlflow.ActiveRun:
    """The child run of a trial; a trial retried after an interruption continues its run."""
    found = mlflow.search_runs(
        experiment_ids=[mlflow.get_run(parent_run_id).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}' "
        f"and tags.trial_id = '{trial_id}'",
        output_format="list",
    )
    if found:
        return mlflow.start_run(run_id=found[0].info.run_id, nested=True)
    return mlflow.start_run(
        run_name=f"trial {trial_id}",
        nested=True,
        parent_run_id=parent_run_id,
        tags={"trial_id": trial_id, "tuner_id": tuner_id},
    )


def make_tuner(
    hypermodel: keras_tuner.HyperModel,
    tune: TuneParams,
    seed: int,
    directory: Path,
    project_name: str,
    budget: Budget | None = None,
) -> keras_tuner.Tuner:
    objective = keras_tuner.Objective(tune.objective, DIRECTIONS[tune.objective])
    common = dict(
        hypermodel=hypermodel,
        objective=objective,
        seed=seed,
        directory=str(directory),
        project_name=project_name,
        overwrite=False,
    )
    if tune.tuner == "random":
        tuner = RandomTuner(max_trials=tune.max_trials, **common)
    elif tune.tuner == "bayesian":
        tuner = BayesianTuner(max_trials=tune.max_trials, **common)
    else:
        # Hyperband sizes its brackets from max_epochs and starts new rounds of brackets until
        # max_trials (models) or the time budget ends it
        tuner = HyperbandTuner(
            max_epochs=tune.epochs, factor=3, hyperband_iterations=10_000, **common
        )
        tuner.oracle.max_trials = tune.max_trials
    tuner.objective_name = tune.objective
    tuner.budget = budget or Budget(
        directory / project_name / "budget_seconds.txt", tune.max_minutes
    )
    if isinstance(tuner.oracle, keras_tuner.Oracle):  # a worker's is a client of the chief's
        budgeted(tuner.oracle, tuner.budget)
    return tuner


def role() -> str:
    """ "single" (no KERASTUNER_* variables), "chief" or "worker"."""
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return "single"
    for var in ("KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID"):
        if not os.environ.get(var):
            raise PipelineError(f"distributed search: KERASTUNER_ORACLE_IP is set but {var} is not")
    return "chief" if "chief" in os.environ["KERASTUNER_TUNER_ID"] else "worker"


def code_fingerprint() -> str:
    """A short hash of the package's source: a search made by other code is never reused."""
    h = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        h.update(str(path.relative_to(PACKAGE)).encode() + path.read_bytes())
    return h.hexdigest()[:16]


def fingerprint(*paths: Path, extra=None) -> str:
    """A short hash of files' bytes (and of `extra` settings)."""
    h = hashlib.sha256(repr(extra).encode())
    for path in paths:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def subsample(n: int, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of a seeded random `fraction` of n rows (at least one)."""
    k = max(1, round(n * fraction))
    return np.sort(np.random.default_rng(seed).permutation(n)[:k])


def run_search(
    task: Task,
    tune: TuneParams,
    seed: int,
    *,
    tuner_root: Path = Path(".tuner"),
    verbose: int | None = None,
) -> dict | None:
    """Run (or continue) the search; returns the result for best_hparams.json, or None in a
    distributed worker, which only runs trials. `verbose`: Keras', verbosity() if None."""
    verbose = verbosity() if verbose is None else verbose
    who = role()
    key = settings_key(
        {
            "tune": tune.model_dump(),
            "base": task.base,
            "seed": seed,
            "data": task.fingerprint,
            "code": code_fingerprint(),
        }
    )
    directory = Path(tuner_root) / task.project
    if who != "worker" and directory.exists():
        for old in directory.iterdir():  # searches of other settings are stale
            if old.name != key:
                shutil.rmtree(old, ignore_errors=True)
    declare(keras_tuner.HyperParameters(), tune)  # an empty space: an error before anything
    hypermodel = ProjectHyperModel(task, tune, seed)
    tracking.setup(task.project)
    if who == "worker":
        parent = _chief_run_id(key)
        tuner = make_tuner(hypermodel, tune, seed, directory, key)
        tuner.parent_run_id = parent
        log.info("worker %s: trials for run %s", os.environ["KERASTUNER_TUNER_ID"], parent)
        _search(tuner, task, tune, verbose)
        return None
    with _parent_run(directory / key, key, tune) as run:
        tuner = make_tuner(hypermodel, tune, seed, directory, key)
        tuner.parent_run_id = run.info.run_id
        if who == "chief":
            log.info(
                "chief: oracle on %s:%s, waiting for workers",
                os.environ["KERASTUNER_ORACLE_IP"],
                os.environ["KERASTUNER_ORACLE_PORT"],
            )
        _search(tuner, task, tune, verbose)
        result, table = summarize(tuner.oracle, tune)
        result["minutes"] = round(tuner.budget.spent() / 60, 2)
        result["cut_by_budget"] = tuner.budget.over()
        mlflow.set_tag("cut_by_budget", str(result["cut_by_budget"]).lower())
        result["table"] = table
        _log_summary(result, table)
        result["run_id"] = run.info.run_id
    return result


def _search(tuner, task: Task, tune: TuneParams, verbose: int) -> None:
    try:
        tuner.search(epochs=tune.epochs, verbose=verbose)
    except RuntimeError as e:
        # the oracle stops after 3 failed trials in a row, with the last trial's traceback
        if "consecutive failures" not in str(e):
            raise
        raise PipelineError(f"the search stopped: {e}") from None


def _parent_run(folder: Path, key: str, tune: TuneParams) -> mlflow.ActiveRun:
    """Start the tune run, or continue the one an interrupted search started."""
    id_file = folder / "mlflow_run_id.txt"
    if id_file.exists():
        try:
            return mlflow.start_run(run_id=id_file.read_text().strip())
        except mlflow.exceptions.MlflowException:
            log.info("the tune run in %s is gone from MLflow: starting a new one", id_file)
    run = mlflow.start_run(run_name="tune", tags={"tune_key": key, "stage": "tune"})
    write_text(id_file, run.info.run_id + "\n")
    mlflow.log_params(tracking.flatten(tune.model_dump(), "tune."))
    mlflow.log_param("tune.key", key)
    return run


def _chief_run_id(key: str) -> str:
    """The parent run of the chief: RNNPIPE_TUNE_RUN_ID, else the running tune run with our
    key (the chief makes it before it serves the oracle)."""
    if os.environ.get(RUN_ID_ENV):
        return os.environ[RUN_ID_ENV]
    deadline = time.monotonic() + WORKER_WAIT_S
    while True:
        runs = mlflow.search_runs(
            filter_string=f"tags.tune_key = '{key}' and attributes.status = 'RUNNING'",
            order_by=["attributes.start_time DESC"],
            output_format="list",
        )
        if runs:
            return runs[0].info.run_id
        if time.monotonic() > deadline:
            raise PipelineError(
                f"worker: no running tune run with tune_key {key} in MLflow "
                f"({mlflow.get_tracking_uri()}) after {WORKER_WAIT_S} s: start the chief first, "
                f"use the same params, data and MLFLOW_TRACKING_URI, or set {RUN_ID_ENV}"
            )
        time.sleep(2)


def summarize(oracle, tune: TuneParams) -> tuple[dict, list[dict]]:
    """The result for best_hparams.json and one row per trial."""
    trials = sorted(oracle.trials.values(), key=lambda t: t.trial_id)
    done = [
        t
        for t in trials
        if t.status == "COMPLETED" and t.score is not None and math.isfinite(t.score)
    ]
    if not done:
        why = next((t.message for t in trials if t.message), "no trial finished")
        raise PipelineError(
            f"the search finished no trial ({len(trials)} tried); the last error:\n{why}"
        )
    best = oracle.get_best_trials(1)[0]
    table = [
        {
            "trial_id": t.trial_id,
            "status": t.status,
            "score": t.score,
            "epochs": t.hyperparameters.values.get("tuner/epochs", tune.epochs),
            **{
                k: v
                for k, v in searched(t.hyperparameters.values, tune.space).items()
                if len(tune.space[k]) > 1
            },
        }
        for t in trials
    ]
    result = {
        "hparams": searched(best.hyperparameters.values, tune.space),
        "score": float(best.score),
        "objective": tune.objective,
        "trials": len(done),
    }
    return result, table


def _log_summary(result: dict, table: list[dict]) -> None:
    import pandas as pd

    mlflow.log_params({f"best.{k}": v for k, v in result["hparams"].items()})
    mlflow.log_metrics({"best_score": result["score"], "trials": result["trials"]})
    mlflow.log_dict(result, "best_hparams.json")
    df = pd.DataFrame(table)
    mlflow.log_text(df.to_csv(index=False), "trials.csv")
    mlflow.log_image(plot_scores(df, result["objective"]), "score_vs_hparams.png")


def plot_scores(df, objective: str):
    """One panel per searched hyperparameter: each trial's score against its value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    names = [c for c in df.columns if c not in ("trial_id", "status", "score")]
    fig, axes = plt.subplots(
        1, max(1, len(names)), figsize=(3.2 * max(1, len(names)), 3), squeeze=False
    )
    for ax, name in zip(axes[0], names, strict=False):
        levels = sorted(df[name].dropna().unique(), key=lambda v: (str(type(v)), v))
        pos = {v: i for i, v in enumerate(levels)}
        ax.scatter([pos[v] for v in df[name]], df["score"])
        ax.set_xticks(
            range(len(levels)), [f"{v:g}" if isinstance(v, float) else str(v) for v in levels]
        )
        ax.set_xlabel(name)
        ax.set_ylabel(objective)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    buf.seek(0)
    return Image.open(buf)


def run_stage(
    task: Task, tune: TuneParams, seed: int, out: Path, report: Path, trials: Path
) -> None:
    """The tune stage: search, then write best_hparams.json, the report and the trials table,
    and drop the search's state (a finished search is not resumed)."""
    start = time.perf_counter()
    result = run_search(task, tune, seed, tuner_root=TUNER_ROOT)
    if result is None:
        log.info("worker done in %.0f s (the chief writes %s)", time.perf_counter() - start, out)
        return
    write_json(trials, [{"trial": int(row["trial_id"]), **row} for row in result["table"]])
    write_json(
        report,
        {
            "objective": result["objective"],
            "best_score": result["score"],
            "trials": result["trials"],
            "tuner": tune.tuner,
            "minutes": result["minutes"],
            "max_minutes": tune.max_minutes,
            "cut_by_budget": result["cut_by_budget"],
            "best_hparams": result["hparams"],
        },
    )
    write_json(out, result["hparams"])
    shutil.rmtree(TUNER_ROOT / task.project, ignore_errors=True)
    if result["cut_by_budget"]:
        log.warning(
            "%s.tune.max_minutes (%g) cut the search after %d finished trials: its "
            "result now depends on this machine's speed (set max_minutes: null for a "
            "result that does not)",
            task.project,
            tune.max_minutes,
            result["trials"],
        )
    log.info(
        "wrote %s in %.0f s: %s = %.4f with %s",
        out,
        time.perf_counter() - start,
        result["objective"],
        result["score"],
        result["hparams"],
    )
