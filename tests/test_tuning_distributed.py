"""Distributed search on Keras Tuner's own engine: a chief and two workers on 127.0.0.1, each a
separate process, finish one search together and log every trial once under one MLflow run.

Run as a module (`python -m tests.test_tuning_distributed DIR`) it is one of those processes:
its role comes from the KERASTUNER_* variables.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.warm_stages import python_module

ROOT = Path(__file__).resolve().parents[1]
MAX_TRIALS = 3
SEED = 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def search(folder: Path) -> None:
    from rnnpipe.core import search as tuning
    from tests.test_tuning import TINY, tiny_task

    if os.environ["KERASTUNER_TUNER_ID"] == "chief":
        # Keras Tuner's chief, once out of trials, looks every 20 s whether its workers have
        # left (oracle_chief.start_server): almost always one is still in its last trial, so
        # the search ended 20 s after its last trial. This chief looks every 0.2 s.
        from keras_tuner.src.distribute import oracle_chief

        oracle_chief.time = SimpleNamespace(sleep=lambda seconds: time.sleep(min(seconds, 0.2)))
    tune = TINY.model_copy(update={"max_trials": MAX_TRIALS})
    result = tuning.run_search(
        tiny_task(), tune, seed=SEED, tuner_root=folder / ".tuner", verbose=0
    )
    if result is not None:  # the chief: the search's whole result
        (folder / "result.json").write_text(json.dumps(result))


@pytest.mark.slow
def test_a_chief_and_two_workers_run_one_search(tmp_path, copy_empty_store):
    import mlflow

    from rnnpipe.core import tracking

    uri = copy_empty_store(tmp_path)
    # the store and experiment (with the tags tracking.setup gives it) made before three
    # processes open it at once; its artifacts in tmp, not in ./mlruns of the workers' folder
    mlflow.MlflowClient(uri).create_experiment(
        "rnnpipe-tiny",
        artifact_location=(tmp_path / "artifacts").as_uri(),
        tags=tracking.EXPERIMENT_TAGS,
    )
    from tests.conftest import warm, without_coverage  # not in the child processes

    # each process forked from this worker's warm runner (tests/warm_stages.py)
    env = warm(without_coverage(os.environ)) | {
        "MLFLOW_TRACKING_URI": uri,
        "KERASTUNER_ORACLE_IP": "127.0.0.1",
        "KERASTUNER_ORACLE_PORT": str(free_port()),
        "KERAS_BACKEND": "tensorflow",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("RNNPIPE_TUNE_RUN_ID", None)
    procs, logs = {}, {}
    try:
        # workers first: they wait for the chief's MLflow run, so both are connected before
        # the chief's oracle can run out of trials
        for tuner_id in ("worker1", "worker2", "chief"):
            logs[tuner_id] = open(tmp_path / f"{tuner_id}.log", "w")  # noqa: SIM115
            procs[tuner_id] = subprocess.Popen(
                python_module("tests.test_tuning_distributed", str(tmp_path)),
                cwd=ROOT,
                env={**env, "KERASTUNER_TUNER_ID": tuner_id},
                stdout=logs[tuner_id],
                stderr=subprocess.STDOUT,
            )
        for proc in procs.values():
            proc.wait(timeout=600)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for f in logs.values():
            f.close()
    for tuner_id, proc in procs.items():
        output = (tmp_path / f"{tuner_id}.log").read_text()[-3000:]
        assert proc.returncode == 0, f"{tuner_id} exited {proc.returncode}:\n{output}"

    result = json.loads((tmp_path / "result.json").read_text())
    assert result["trials"] == MAX_TRIALS
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("rnnpipe-tiny")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    # every trial once, each run by a worker (the chief only serves the oracle)
    assert sorted(c.data.tags["trial_id"] for c in children) == [str(i) for i in range(MAX_TRIALS)]
    assert {c.data.tags["tuner_id"] for c in children} <= {"worker1", "worker2"}
    assert all(c.info.status == "FINISHED" for c in children)
    # the search's files went to the experiment's folder (before, to ./mlruns of the checkout)
    assert parents[0].info.artifact_uri.startswith((tmp_path / "artifacts").as_uri())
    assert "trials.csv" in {a.path for a in client.list_artifacts(parents[0].info.run_id)}


if __name__ == "__main__":
    search(Path(sys.argv[1]))
