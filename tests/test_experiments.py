"""DVC experiments end to end with MLflow, and the errors a user meets when an input is wrong."""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest
import yaml

from rnnpipe.core import packaging
from tests.conftest import DVC, RNNPIPE, copy_pipeline, run

pytestmark = pytest.mark.slow


def dvc(repo, env, *args, check=True):
    return run([str(DVC), *args], repo, env, check=check)


def locked_md5(repo, stage: str, out: str) -> str:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return next(o["md5"] for o in lock["stages"][stage]["outs"] if o["path"] == out)


def mlflow_runs(repo) -> dict[str, dict[str, str]]:
    """run id -> its tags, straight from the repo's MLflow store."""
    with sqlite3.connect(repo / "mlflow.db") as db:
        rows = db.execute("select run_uuid, key, value from tags").fetchall()
    runs: dict[str, dict[str, str]] = {}
    for run_id, key, value in rows:
        runs.setdefault(run_id, {})[key] = value
    return runs


@pytest.fixture
def committed(tiny_pipeline, tmp_path):
    """A copy of the tiny pipeline's repo with everything committed (experiments need a
    baseline commit)."""
    repo, env = copy_pipeline(tiny_pipeline, tmp_path / "repo")
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "baseline"], repo, env)
    assert "mlflow.db" not in run(["git", "ls-files"], repo, env).stdout
    return repo, env


def test_exp_run_in_workspace_and_temp_logs_into_the_project_store(committed):
    repo, env = committed
    commit = run(["git", "rev-parse", "HEAD"], repo, env).stdout.strip()
    out = dvc(repo, env, "exp", "run", "-S", "imdb.train.epochs=1", "-n", "fewer-epochs")
    assert "Running stage 'imdb_train'" in out.stdout + out.stderr
    assert "Running stage 'charlm_train'" not in out.stdout + out.stderr
    out = dvc(
        repo,
        env,
        "exp",
        "run",
        "--temp",
        "-S",
        "imdb.evaluate.threshold=0.4",
        "-n",
        "low-threshold",
    )
    shown = json.loads(dvc(repo, env, "exp", "show", "--json").stdout)
    names = {e["name"]: e for b in shown for e in b.get("experiments") or []}
    assert {"fewer-epochs", "low-threshold"} <= set(names)
    metrics = names["low-threshold"]["revs"][0]["data"]["metrics"]
    assert metrics["reports/imdb/metrics.json"]["data"]["test"]["threshold"] == 0.4
    tags = mlflow_runs(repo)
    fewer = {t["dvc.stage"]: t for t in tags.values() if t.get("dvc.experiment") == "fewer-epochs"}
    # imdb_compare reruns after train: its recurrent row comes from train's epochs
    assert {"imdb_train", "imdb_compare"} <= set(fewer)
    assert fewer["imdb_train"]["mlflow.source.git.commit"] == commit
    # --temp ran evaluate in a copy under .dvc/tmp/exps; it found the train run in the
    # project's store (by the model's hash) and logged its metrics there
    assert not list((repo / ".dvc/tmp").rglob("mlflow.db"))


def test_exp_run_with_an_unknown_key_fails_naming_it(committed):
    repo, env = committed
    proc = dvc(repo, env, "exp", "run", "-S", "imdb.train.epochz=1", check=False)
    assert proc.returncode != 0
    assert "epochz" in proc.stdout + proc.stderr


def rnnpipe(repo, env, *args):
    return run([str(RNNPIPE), *args], repo, env, check=False)


def test_a_stage_run_by_hand_with_a_missing_input_names_it(tiny_pipeline, tmp_path):
    repo, env = copy_pipeline(tiny_pipeline, tmp_path / "repo")
    before = (repo / "models/imdb/model.keras").read_bytes()
    proc = rnnpipe(
        repo,
        env,
        "imdb",
        "train",
        "data/processed/imdb",
        "nope/vocab.json",
        "models/imdb/hparams.json",
        "models/imdb/word_vectors.npy",
        "models/imdb",
    )
    assert proc.returncode == 1
    assert "nope/vocab.json" in proc.stderr and "Traceback" not in proc.stderr
    assert (repo / "models/imdb/model.keras").read_bytes() == before  # earlier output intact
    proc = rnnpipe(
        repo,
        env,
        "charlm",
        "evaluate",
        "models/charlm",
        "data/nothing",
        "reports/charlm",
        "models/charlm/pyfunc",
    )
    assert proc.returncode == 1 and "data/nothing" in proc.stderr


TEACH = [
    "imdb",
    "teach",
    "data/interim/imdb/reviews.parquet",
    "data/processed/imdb",
    "models/imdb/model.keras",
    "data/processed/imdb/unsup_soft.npz",
    "reports/imdb/teach.json",
    "reports/quality/imdb_soft_labels.json",
]


def test_teach_refuses_more_reviews_than_there_are_and_another_valid_split(tiny_pipeline, tmp_path):
    repo, env = copy_pipeline(tiny_pipeline, tmp_path / "repo")
    soft = (repo / "data/processed/imdb/unsup_soft.npz").read_bytes()
    report = (repo / "reports/imdb/teach.json").read_text()
    params = (repo / "params.yaml").read_text()
    (repo / "params.yaml").write_text(params.replace("unsup_reviews: 8", "unsup_reviews: 11"))
    proc = rnnpipe(repo, env, *TEACH)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "imdb.student.unsup_reviews is 11, but" in proc.stderr
    assert "holds 10 unlabelled reviews" in proc.stderr
    (repo / "params.yaml").write_text(params)
    shutil.copyfile(repo / "data/processed/imdb/test.npz", repo / "data/processed/imdb/valid.npz")
    proc = rnnpipe(repo, env, *TEACH)
    assert proc.returncode == 1 and "is not the valid split of" in proc.stderr
    assert (repo / "data/processed/imdb/unsup_soft.npz").read_bytes() == soft  # left as it was
    assert (repo / "reports/imdb/teach.json").read_text() == report


def test_register_names_what_is_missing(tiny_pipeline, tmp_path):
    repo, env = copy_pipeline(tiny_pipeline, tmp_path / "repo")
    decision = (repo / "reports/imdb/promotion.json").read_text()
    # a model file no train run wrote
    (repo / "other.keras").write_bytes(b"not the trained model")
    proc = rnnpipe(
        repo,
        env,
        "imdb",
        "register",
        "other.keras",
        "reports/imdb/metrics.json",
        "data/processed/imdb/valid.npz",
        "reports/imdb/promotion.json",
    )
    assert proc.returncode == 1 and "no run in the MLflow store" in proc.stderr
    assert (repo / "reports/imdb/promotion.json").read_text() == decision
    # a metric that metrics.json does not have
    params = (repo / "params.yaml").read_text()
    (repo / "params.yaml").write_text(params.replace("metric: accuracy", "metric: nope"))
    proc = rnnpipe(
        repo,
        env,
        "imdb",
        "register",
        "models/imdb/student/model.keras",
        "reports/imdb/metrics.json",
        "data/processed/imdb/valid.npz",
        "reports/imdb/promotion.json",
    )
    assert proc.returncode == 1 and "valid.nope" in proc.stderr


def test_evaluate_and_register_rerun_in_a_new_store(tiny_pipeline, tmp_path):
    """After `dvc pull` into a fresh clone (or `make clean-tracking`) the MLflow store holds no
    train run: evaluate logs to a run of its own, tagged with the model's hash, register
    registers from it, and the champion answers. The served model's folder is written again
    with the same bytes, and the registered version holds them."""
    repo, env = copy_pipeline(tiny_pipeline, tmp_path / "repo")
    metrics = (repo / "reports/imdb/metrics.json").read_text()
    served = packaging.tree_sha256(repo / "models/imdb/pyfunc")
    locked = locked_md5(repo, "imdb_evaluate", "models/imdb/pyfunc")
    (repo / "mlflow.db").unlink()
    shutil.rmtree(repo / "mlartifacts", ignore_errors=True)
    out = dvc(repo, env, "repro", "-f", "-s", "imdb_evaluate", "imdb_register")
    assert "it was trained with another store" in out.stdout + out.stderr
    assert (repo / "reports/imdb/metrics.json").read_text() == metrics  # the same evaluation
    runs = mlflow_runs(repo)
    evaluated = [t for t in runs.values() if t.get("stage") == "imdb_evaluate"]
    assert len(evaluated) == 1 and evaluated[0]["train_run"] == "elsewhere"
    promotion = json.loads((repo / "reports/imdb/promotion.json").read_text())
    assert promotion["decision"] == "champion" and promotion["champion_version"] == 1
    assert packaging.tree_sha256(repo / "models/imdb/pyfunc") == served
    with sqlite3.connect(repo / "mlflow.db") as db:
        tags = dict(
            db.execute(
                "select key, value from model_version_tags where name = "
                "'imdb-sentiment' and version = 1"
            ).fetchall()
        )
    assert tags[packaging.TAG] == served
    assert locked_md5(repo, "imdb_evaluate", "models/imdb/pyfunc") == locked
    proc = run([str(RNNPIPE), "imdb", "predict", "a wonderful, moving film"], repo, env)
    answer = json.loads(proc.stdout.splitlines()[0])
    assert 0 <= answer["probability"] <= 1
