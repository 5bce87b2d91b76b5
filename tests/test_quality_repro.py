"""`dvc repro` on broken tiny data stops at the quality gate: nothing downstream runs."""

import json

import pytest
import yaml

from tests import tinydata
from tests.conftest import BIN, ROOT, run


def _stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _furthest(project: str, before: str | None = None) -> str:
    """The furthest stage of the project that dvc.yaml has so far (stopping before `before`)."""
    order = ["train", "check_encoded", "encode", "vocab", "check_raw"]
    if before:
        order = order[order.index(before) + 1:]
    for name in order:
        if f"{project}_{name}" in _stages():
            return f"{project}_{name}"
    raise AssertionError(f"no {project}_check_raw stage in dvc.yaml")


@pytest.mark.slow
def test_repro_stops_at_check_raw_on_a_blank_review(pipeline_repo, tiny_mirror):
    repo, env = pipeline_repo
    members = tinydata.imdb_members()
    blank = sorted(n for n in members if n.startswith("aclImdb/test/neg/"))[0]
    members[blank] = b"  \n"
    tinydata.write_imdb_archive(tiny_mirror / "aclImdb_v1.tar.gz", members=members)

    proc = run([str(BIN / "dvc"), "repro", _furthest("imdb")], repo, env, check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "data quality check imdb_raw failed" in out
    assert "no review text is blank" in out
    assert "expect_column_values_to_match_regex on column 'text'" in out
    assert (repo / "data/interim/imdb/reviews.parquet").is_file()  # ingest ran
    report = json.loads((repo / "reports/quality/imdb_raw.json").read_text())
    assert report["failed"] >= 1
    # nothing after the gate ran
    assert not (repo / "data/processed/imdb").exists()
    assert not (repo / "models/imdb/model.keras").exists()


@pytest.mark.slow
def test_repro_every_gate_passes_on_good_tiny_data(pipeline_repo):
    repo, env = pipeline_repo
    dvc = str(BIN / "dvc")
    targets = [_furthest(p, before="train") for p in ("imdb", "charlm")]
    run([dvc, "repro", *targets], repo, env)
    checks = [f"{p}_{kind}" for p in ("imdb", "charlm") for kind in ("raw", "encoded")
              if f"{p}_check_{kind}" in _stages()]
    for name in checks:
        report = json.loads((repo / f"reports/quality/{name}.json").read_text())
        assert report["success"] and report["failed"] == 0 and report["evaluated"] > 0
    # one Data Docs site lists every check
    index = (repo / "reports/quality/docs/index.html").read_text()
    assert all(f"{name}." in index for name in checks)
    proc = run([dvc, "metrics", "show"], repo, env)  # the reports are DVC metrics
    assert "reports/quality/imdb_raw.json" in proc.stdout and "failed" in proc.stdout
