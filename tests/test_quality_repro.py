"""`dvc repro` on broken tiny data stops at the quality gate: nothing downstream runs; each
gate logs an MLflow run, passed or failed."""

import json

import mlflow
import pytest

from tests import tinydata
from tests.conftest import DVC, copy_pipeline, run


def gate_runs(repo, project: str, stage: str) -> list:
    """The runs of a gate in the repo's MLflow store, newest first."""
    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(f"rnnpipe-{project}")
    return client.search_runs(
        [experiment.experiment_id],
        f"tags.stage = '{stage}'",
        order_by=["attributes.start_time DESC"],
    )


@pytest.mark.slow
def test_repro_stops_at_check_raw_on_a_blank_review(tiny_pipeline, tmp_path):
    repo, env = copy_pipeline(tiny_pipeline, tmp_path / "repo")
    mirror = tmp_path / "mirror"
    members = tinydata.imdb_members()
    blank = sorted(n for n in members if n.startswith("aclImdb/test/neg/"))[0]
    members[blank] = b"  \n"
    tinydata.write_imdb_archive(mirror / "aclImdb_v1.tar.gz", members=members)
    env["RNNPIPE_DATA_MIRROR"] = str(mirror)
    model = (repo / "models/imdb/model.keras").read_bytes()

    proc = run([str(DVC), "repro", "-f", "imdb_download", "imdb_train"], repo, env, check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "data quality check imdb_raw failed" in out
    assert "no review text is blank" in out
    assert "expect_column_values_to_match_regex on column 'text'" in out
    assert "Running stage 'imdb_ingest'" in out and "Running stage 'imdb_vocab'" not in out
    report = json.loads((repo / "reports/quality/imdb_raw.json").read_text())
    failed = {e["description"] for e in report["expectations"] if not e["success"]}
    assert failed == {"no review text is blank", "every review has at least 10 characters"}
    assert (repo / "models/imdb/model.keras").read_bytes() == model  # nothing after the gate
    assert "imdb_check_raw" in run([str(DVC), "status", "--json"], repo, env).stdout
    failed_run = gate_runs(repo, "imdb", "imdb_check_raw")[0]  # what failed, in MLflow
    assert failed_run.info.status == "FAILED"
    assert failed_run.data.tags["quality.passed"] == "false"
    assert failed_run.data.metrics["failed"] == 2


@pytest.mark.slow
def test_every_gate_passed_on_good_tiny_data(tiny_pipeline):
    repo = tiny_pipeline.repo
    checks = [f"{p}_{kind}" for p in ("imdb", "charlm") for kind in ("raw", "encoded")]
    for name in checks:
        report = json.loads((repo / f"reports/quality/{name}.json").read_text())
        assert report["success"] and report["failed"] == 0 and report["evaluated"] > 0
        # its MLflow run, tagged with the hashes of the data its stamp says passed
        project, kind = name.split("_")
        folder = "interim" if kind == "raw" else "processed"
        stamp = json.loads((repo / f"data/{folder}/{project}/check_{kind}.json").read_text())
        (gate,) = gate_runs(repo, project, f"{project}_check_{kind}")
        assert gate.info.status == "FINISHED" and gate.data.tags["quality.passed"] == "true"
        assert {
            k.removeprefix("data_sha256."): v
            for k, v in gate.data.tags.items()
            if k.startswith("data_sha256.")
        } == stamp["passed"]
        assert gate.data.metrics["evaluated"] == report["evaluated"]
    # one Data Docs site lists every check
    index = (repo / "reports/quality/docs/index.html").read_text()
    assert all(f"{name}." in index for name in checks)
