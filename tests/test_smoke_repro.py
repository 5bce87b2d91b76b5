"""The real `dvc repro` of download + ingest, on tiny data, in a temporary copy of the repo.

Explicit targets: later stages of dvc.yaml are not this test's business.
"""

import hashlib
import json

import pandas as pd
import pytest

from tests.conftest import BIN, run

TARGETS = ["imdb_ingest", "charlm_ingest"]
OUTPUTS = [
    "data/raw/imdb/aclImdb_v1.tar.gz",
    "data/raw/imdb/download.json",
    "data/raw/charlm/mysterious_island.txt",
    "data/raw/charlm/download.json",
    "data/interim/imdb/reviews.parquet",
    "data/interim/charlm/corpus.txt",
]


def repro(repo, env) -> str:
    proc = run([str(BIN / "dvc"), "repro", *TARGETS], repo, env)
    return proc.stdout + proc.stderr


def mtimes(repo) -> dict[str, int]:
    return {name: (repo / name).stat().st_mtime_ns for name in OUTPUTS}


@pytest.mark.slow
def test_dvc_repro_download_and_ingest(pipeline_repo, tiny_mirror):
    repo, env = pipeline_repo
    log = repro(repo, env)
    for stage in ["imdb_download", "imdb_ingest", "charlm_download", "charlm_ingest"]:
        assert f"Running stage '{stage}'" in log

    df = pd.read_parquet(repo / "data/interim/imdb/reviews.parquet")
    assert list(df.columns) == ["split", "id", "rating", "label", "text"]
    assert df["split"].value_counts().to_dict() == {"train": 30, "valid": 10, "test": 40}
    assert set(df["label"]) == {0, 1}
    corpus = (repo / "data/interim/charlm/corpus.txt").read_text(encoding="utf-8")
    assert corpus.startswith("THE MYSTERIOUS ISLAND\n\nby Jules Verne")
    assert "Project Gutenberg" not in corpus and "\r" not in corpus
    record = json.loads((repo / "data/raw/imdb/download.json").read_text())
    archive = tiny_mirror / "aclImdb_v1.tar.gz"
    assert record["source"] == str(archive)
    assert record["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    before = mtimes(repo)

    # a second run changes nothing
    log = repro(repo, env)
    assert "Running stage" not in log
    for stage in ["imdb_download", "imdb_ingest", "charlm_download", "charlm_ingest"]:
        assert f"Stage '{stage}' didn't change, skipping" in log
    assert mtimes(repo) == before

    # one ingest param: that ingest reruns, nothing upstream of it, nothing of the other project
    params = repo / "params.yaml"
    text = params.read_text()
    assert text.count("valid_fraction: 0.25") == 1
    params.write_text(text.replace("valid_fraction: 0.25", "valid_fraction: 0.5"))
    log = repro(repo, env)
    assert "Running stage 'imdb_ingest'" in log
    for stage in ["imdb_download", "charlm_download", "charlm_ingest"]:
        assert f"Stage '{stage}' didn't change, skipping" in log
    after = mtimes(repo)
    changed = {name for name in OUTPUTS if after[name] != before[name]}
    assert changed == {"data/interim/imdb/reviews.parquet"}
    df = pd.read_parquet(repo / "data/interim/imdb/reviews.parquet")
    assert df["split"].value_counts().to_dict() == {"train": 20, "valid": 20, "test": 40}
