import pandas as pd
import pytest

from tests.conftest import BIN, run


@pytest.mark.slow
def test_dvc_repro_download_and_ingest(pipeline_repo):
    repo, env = pipeline_repo
    run([str(BIN / "dvc"), "repro", "imdb_ingest", "charlm_ingest"], repo, env)
    df = pd.read_parquet(repo / "data/interim/imdb/reviews.parquet")
    assert df["split"].value_counts().to_dict() == {"train": 30, "valid": 10, "test": 40}
    corpus = (repo / "data/interim/charlm/corpus.txt").read_text(encoding="utf-8")
    assert corpus.startswith("THE MYSTERIOUS ISLAND\n\nby Jules Verne")
    assert "Project Gutenberg" not in corpus
