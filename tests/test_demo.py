"""`python -m rnnpipe.demo` (`make demo`): the demo profile and the data slice (fast), and the
whole demo on tiny data from a copy of the tiny pipeline as the user's workspace (slow)."""

from __future__ import annotations

import codecs
import gzip
import io
import os
import re
import shutil
import tarfile
from pathlib import Path

import pytest
import yaml

from rnnpipe import demo
from rnnpipe.charlm.ingest import cut_novel, decode_text
from rnnpipe.core.params import load_params
from rnnpipe.imdb.ingest import read_reviews
from rnnpipe.verify import BadInput, load_stages
from tests import tinydata
from tests.conftest import ROOT, TINY_PARAMS, copy_pipeline

PROFILE = ROOT / "params_demo.yaml"
# the real data (../shared/data): 12,500 reviews in each labelled folder, 50,000 unlabelled,
# a novel of 1,112,261 characters
REAL_REVIEWS, REAL_UNSUP, REAL_NOVEL = 12_500, 50_000, 1_112_261


# -- the profile --------------------------------------------------------------------------


def test_the_demo_profile_validates_small_and_apart_from_the_workspace():
    params, workspace = load_params(PROFILE), load_params(ROOT / "params.yaml")
    for project in demo.PROJECTS:
        p, w = getattr(params, project), getattr(workspace, project)
        assert p.promote.model_name != w.promote.model_name  # the champion stays
        assert (p.tune.max_trials, p.tune.max_minutes) == (2, None)
        assert (p.compare.epochs, p.compare.max_minutes) == (1, None)
        assert p.download.sha256 == []  # the slice is not the published file
    assert params.charlm.ingest.text_sha256 == []
    part = demo.data_slice(params)
    assert set(part.reviews) == {
        ("train", "pos"),
        ("train", "neg"),
        ("test", "pos"),
        ("test", "neg"),
        ("train", "unsup"),
    }
    assert all(0 < n < REAL_REVIEWS for k, n in part.reviews.items() if k[1] != "unsup")
    assert 0 < part.reviews[("train", "unsup")] < REAL_UNSUP
    assert 0 < part.novel_chars <= part.novel_max_chars < REAL_NOVEL


def _profile(tmp_path: Path, edit) -> Path:
    raw = yaml.safe_load(TINY_PARAMS.read_text())
    edit(raw)
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_the_slice_is_what_the_raw_data_gates_expect(tmp_path):
    params = load_params(TINY_PARAMS)
    part = demo.data_slice(params)
    assert part.reviews == {
        ("train", "pos"): 20,
        ("train", "neg"): 20,
        ("test", "pos"): 20,
        ("test", "neg"): 20,
        ("train", "unsup"): 10,
    }
    assert (part.novel_chars, part.novel_max_chars) == (10_000, 40_000)

    def no_unsup_odd_test(raw):
        raw["imdb"]["ingest"]["include_unsup"] = False
        raw["imdb"]["embed"]["use_unsup"] = False
        raw["imdb"]["check_raw"]["test_size"] = 41

    with pytest.raises(BadInput, match=r"imdb.check_raw.test_size \(41\).*must be even"):
        demo.data_slice(load_params(_profile(tmp_path, no_unsup_odd_test)))

    def no_unsup(raw):
        raw["imdb"]["ingest"]["include_unsup"] = False
        raw["imdb"]["embed"]["use_unsup"] = False

    assert ("train", "unsup") not in demo.data_slice(
        load_params(_profile(tmp_path, no_unsup))
    ).reviews


# -- the reviews ----------------------------------------------------------------------------

WANT = {
    ("train", "pos"): 6,
    ("train", "neg"): 5,
    ("test", "pos"): 4,
    ("test", "neg"): 3,
    ("train", "unsup"): 2,
}


def _folder(row) -> tuple[str, str]:
    if row["split"] == "unsup":
        return "train", "unsup"
    return row["split"], "pos" if row["label"] == 1 else "neg"


def test_slice_imdb_keeps_the_first_reviews_of_each_folder_with_their_movies(tmp_path):
    src = tinydata.write_imdb_archive(tmp_path / "full.tar.gz")  # 20 a folder, 10 unsup
    dest = tmp_path / "mirror" / "aclImdb_v1.tar.gz"
    kept = demo.slice_imdb(src, dest, WANT)
    assert kept == {f"{s}/{f}": n for (s, f), n in WANT.items()}
    full = read_reviews(src, include_unsup=True)
    wanted = full[[row["id"] < WANT[_folder(row)] for _, row in full.iterrows()]]
    sliced = read_reviews(dest, include_unsup=True)  # ingest reads it, movies and all
    assert sliced.to_dict("records") == wanted.reset_index(drop=True).to_dict("records")
    with tarfile.open(dest) as tar:
        names = tar.getnames()
        assert names == sorted(names)
        assert {m.mtime for m in tar.getmembers()} == {0}
        assert "aclImdb/README" in names
        urls = tar.extractfile("aclImdb/test/urls_neg.txt").read().decode().splitlines()
    assert len(urls) == 3
    with gzip.open(dest) as gz:  # the gzip header: no name, no time
        gz.read(1)
        assert gz.mtime == 0
    again = demo.slice_imdb(src, tmp_path / "again.tar.gz", WANT)
    assert again == kept and (tmp_path / "again.tar.gz").read_bytes() == dest.read_bytes()


def test_slice_imdb_without_unsup_and_too_few_reviews(tmp_path):
    src = tinydata.write_imdb_archive(tmp_path / "full.tar.gz")
    labelled = {k: n for k, n in WANT.items() if k[1] != "unsup"}
    demo.slice_imdb(src, tmp_path / "a.tar.gz", labelled)
    with tarfile.open(tmp_path / "a.tar.gz") as tar:
        assert not [n for n in tar.getnames() if "unsup" in n]
    with pytest.raises(BadInput, match=r"aclImdb/test/neg has 20 reviews with an id below 21"):
        demo.slice_imdb(src, tmp_path / "b.tar.gz", labelled | {("test", "neg"): 21})
    with pytest.raises(BadInput, match="no .*nothing.tar.gz to slice"):
        demo.slice_imdb(tmp_path / "nothing.tar.gz", tmp_path / "c.tar.gz", labelled)


def test_slice_imdb_refuses_unsafe_members(tmp_path):
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(bad, "w:gz") as tar:
        info = tarfile.TarInfo("aclImdb/../../etc/passwd")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(BadInput, match="unsafe archive member"):
        demo.slice_imdb(bad, tmp_path / "out.tar.gz", WANT)


# -- the novel ------------------------------------------------------------------------------


def _novel(text: str, ingest) -> str:
    return cut_novel(text, ingest.start_marker, ingest.end_markers, ingest.header_markers)


@pytest.mark.parametrize("layout", ["2016", "current"])
def test_slice_novel_cuts_the_novel_where_ingest_reads_it(tmp_path, layout):
    ingest = load_params(PROFILE).charlm.ingest
    src = tinydata.write_gutenberg(tmp_path / "full.txt", layout=layout)
    n = demo.slice_novel(src, tmp_path / "cut.txt", 5_000, 10_000, ingest)
    raw = (tmp_path / "cut.txt").read_bytes()
    assert raw.startswith(codecs.BOM_UTF8)  # as the real file
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF line ends, as the real file
    text, whole = decode_text(raw, "cut"), decode_text(src.read_bytes(), "full")
    full, part = _novel(whole, ingest), _novel(text, ingest)
    assert len(part) == n and 5_000 <= n <= 10_000
    assert full.startswith(part) and full[n] == "\n"  # the first part, to a line's end
    assert "\n" not in full[5_000:n]
    start = whole.index(full)
    assert text.startswith(whole[:start])  # the licence header as it was
    assert text.endswith(whole[start + len(full) :])  # and the footer


def test_slice_novel_bounds(tmp_path):
    ingest = load_params(PROFILE).charlm.ingest
    src = tinydata.write_gutenberg(tmp_path / "full.txt")
    full = _novel(decode_text(src.read_bytes(), "full"), ingest)
    assert demo.slice_novel(src, tmp_path / "all.txt", len(full), len(full), ingest) == len(full)
    line_end = full.index("\n", 5_000)
    with pytest.raises(BadInput, match=f"are {line_end}, more than charlm.check_raw.max_chars"):
        demo.slice_novel(src, tmp_path / "cut.txt", line_end - 10, line_end - 1, ingest)
    with pytest.raises(BadInput, match=f"the novel has {len(full)} characters, fewer"):
        demo.slice_novel(src, tmp_path / "cut.txt", len(full) + 1, len(full) + 9, ingest)


# -- the run's report -------------------------------------------------------------------------


def test_stage_times_from_dvc_output():
    events = [
        (0.0, "Running stage 'imdb_download':\n"),
        (1.0, "> rnnpipe imdb download\n"),
        (5.0, "Updating lock file 'dvc.lock'\n"),
        (5.5, "Running stage 'imdb_ingest':\n"),
        (7.0, "Use `dvc push` to send your updates to remote storage.\n"),
    ]
    assert demo.stage_times(events, 9.5) == [("imdb_download", 5.5), ("imdb_ingest", 4.0)]
    assert demo.stage_times([], 1.0) == []


def test_a_profile_with_the_workspaces_model_names_is_refused(tmp_path, monkeypatch, capsys):
    (tmp_path / ".dvc").mkdir()
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    shutil.copyfile(TINY_PARAMS, tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    assert demo.main(["--params", str(TINY_PARAMS)]) == 2
    assert (
        "imdb.promote.model_name is 'imdb-sentiment', the workspace's model name"
        in capsys.readouterr().err
    )
    bad = _profile(tmp_path, lambda raw: raw["imdb"]["tune"].update(max_trials=0))
    assert demo.main(["--params", str(bad)]) == 2
    assert (
        "imdb.tune.max_trials: Input should be greater than or equal to 1"
        in capsys.readouterr().err
    )


# -- the whole demo on tiny data ----------------------------------------------------------------


def _use_env(monkeypatch, env: dict[str, str]) -> None:
    for key in set(os.environ) - set(env):
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def _store(db: Path) -> tuple[dict[str, set[str]], dict[str, str], dict[str, list[str]]]:
    """The store's runs by experiment, the experiments' artifact locations, and the registered
    models' versions."""
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{db}")
    experiments = client.search_experiments()
    runs = {
        e.name: {r.info.run_id for r in client.search_runs([e.experiment_id], max_results=5000)}
        for e in experiments
    }
    models = {
        m.name: sorted(v.version for v in client.search_model_versions(f"name = '{m.name}'"))
        for m in client.search_registered_models()
    }
    return runs, {e.name: e.artifact_location for e in experiments}, models


def _stages(db: Path, experiment: str) -> set[str]:
    """The `stage` tags of an experiment's runs."""
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{db}")
    runs = client.search_runs(
        [client.get_experiment_by_name(experiment).experiment_id], max_results=5000
    )
    return {r.data.tags.get("stage") for r in runs}


def _files(repo: Path) -> dict[str, bytes]:
    watched = [
        repo / "dvc.lock",
        repo / "params.yaml",
        repo / "dvc.yaml",
        *sorted((repo / "reports").rglob("*")),
        *sorted((repo / "models").rglob("*")),
    ]
    return {str(p.relative_to(repo)): p.read_bytes() for p in watched if p.is_file()}


@pytest.mark.slow
def test_the_demo_runs_every_stage_and_leaves_the_workspace_as_it_was(
    tiny_pipeline, tiny_mirror, tmp_path, monkeypatch, capsys
):
    repo, env = copy_pipeline(tiny_pipeline, tmp_path / "repo")
    profile = _profile(
        tmp_path,
        lambda raw: [
            raw[p]["promote"].update(model_name=raw[p]["promote"]["model_name"] + "-demo")
            for p in demo.PROJECTS
        ],
    )
    files = _files(repo)
    cache = sorted(p.relative_to(repo) for p in (repo / ".dvc/cache").rglob("*"))
    runs, locations, models = _store(repo / "mlflow.db")
    _use_env(monkeypatch, env)
    monkeypatch.chdir(repo)
    code = demo.main(["--params", str(profile), "--mirror", str(tiny_mirror), "--keep"])
    out, err = capsys.readouterr()
    assert code == 0, out + err[-5000:]
    kept = Path(re.search(r"scratch folder kept in (\S+)", out)[1])
    try:
        # every stage ran, in the copy, on the profile
        stages = list(load_stages(repo))
        assert len(stages) == 28
        table = dict(re.findall(r"^(\w+_\w+) +(\d+\.\d)$", out, re.M))
        assert set(table) == set(stages), out
        assert f"all {len(stages)} stages ran" in out
        copy = kept / repo.name
        assert (copy / "params.yaml").read_bytes() == profile.read_bytes()
        assert set(yaml.safe_load((copy / "dvc.lock").read_text())["stages"]) == set(stages)
        assert not (copy / ".dvc/cache/files").exists()  # --no-commit: nothing cached
        assert re.search(
            r"^imdb: +test accuracy [01]\.\d{4} \(40 reviews\); TF-IDF baseline "
            r"\d\.\d{4}; registered imdb-sentiment-demo version 1 \(champion\)$",
            out,
            re.M,
        ), out
        assert re.search(r"^charlm: test loss \d+\.\d{4} nats/char", out, re.M), out
        assert f"{copy / 'reports'}/" in out
        # the sliced mirror: the whole tiny archive, the novel's first 10,000 characters
        assert (kept / "mirror/aclImdb_v1.tar.gz").is_file()
        novel = _novel(
            decode_text((tiny_mirror / "mysterious_island_1268-0.txt").read_bytes(), "tiny"),
            load_params(profile).charlm.ingest,
        )
        corpus = (copy / "data/interim/charlm/corpus.txt").read_text()
        assert 10_000 <= len(corpus) < len(novel) and novel.startswith(corpus)

        # the workspace: its files, DVC cache and MLflow experiments as they were
        assert _files(repo) == files
        assert sorted(p.relative_to(repo) for p in (repo / ".dvc/cache").rglob("*")) == cache
        runs_after, locations_after, models_after = _store(repo / "mlflow.db")
        assert {name: runs_after[name] for name in runs} == runs
        assert {name: models_after[name] for name in models} == models
        # the demo's runs in the user's store, under experiments of their own, with their
        # artifacts in the workspace's mlartifacts/; none in the scratch copy's
        new = set(runs_after) - set(runs)
        assert new == {f"rnnpipe-{p}-demo" for p in demo.PROJECTS}
        for project in demo.PROJECTS:
            name = f"rnnpipe-{project}-demo"
            assert locations_after[name] == (repo / "mlartifacts").as_uri()
            stages = _stages(repo / "mlflow.db", name)
            assert {
                f"{project}_check_raw",
                f"{project}_check_encoded",
                f"{project}_train",
                f"{project}_compare",
            } <= stages, stages
        assert set(models_after) - set(models) == {
            "imdb-sentiment-demo",
            "mysterious-island-charlm-demo",
        }
        assert f"mlflow ui --backend-store-uri sqlite:///{repo / 'mlflow.db'}" in out
        assert "experiments rnnpipe-imdb-demo, rnnpipe-charlm-demo" in out
        assert not (copy / "mlflow.db").exists()
    finally:
        shutil.rmtree(kept, ignore_errors=True)
