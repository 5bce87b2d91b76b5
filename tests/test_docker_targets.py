"""`make docker-imdb`, `make docker-charlm`: without Docker one line says so and how to get the
image another way; with it, `mlflow models build-docker` of models/<project>/pyfunc."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

MAKE = shutil.which("make")
pytestmark = pytest.mark.skipif(MAKE is None, reason="no make")


def workspace(folder: Path) -> Path:
    """A folder to run the Makefile in, with a stand-in venv whose `mlflow` records its
    arguments, and the files `make setup` checks older than the venv's stamp: nothing is
    installed."""
    for name in ("requirements.lock", "pyproject.toml"):
        (folder / name).write_text("")
    script(folder / ".venv/bin", "mlflow", f'echo "$@" > {folder / "mlflow-args"}')
    (folder / ".venv/.installed").touch()
    return folder


def make(target: str, cwd: Path, path: list[Path]) -> subprocess.CompletedProcess:
    """`make -s target` with the project's Makefile in `cwd`, PATH only `path` (no docker
    unless put there), and no make settings of an outer make (`make test VENV=...`)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    env["PATH"] = os.pathsep.join(map(str, path))
    return subprocess.run(
        [MAKE, "-s", "-f", str(ROOT / "Makefile"), "-C", str(cwd), target],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def script(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(f"#!/bin/sh\n{body}\n")
    (folder / name).chmod(0o755)
    return folder


@pytest.mark.parametrize("project", ["imdb", "charlm"])
def test_without_docker_one_line_says_so_and_how_else(project, tmp_path):
    (workspace(tmp_path) / f"models/{project}/pyfunc").mkdir(parents=True)
    (tmp_path / f"models/{project}/pyfunc/MLmodel").write_text("")
    proc = make(f"docker-{project}", tmp_path, [tmp_path / "empty"])  # no docker
    assert proc.returncode != 0
    assert proc.stdout == ""
    first, *rest = proc.stderr.splitlines()
    assert first == (
        f"docker-{project}: docker is not on PATH; install Docker, or write the image's build "
        f"context without it (mlflow models generate-dockerfile -m models/{project}/pyfunc "
        f"--env-manager local -d DIR) and build DIR where Docker or Podman is (docker build "
        f"-t rnnpipe-{project} DIR)"
    )
    assert all(line.startswith("make: ***") for line in rest)  # make's own line, if any
    assert not (tmp_path / "mlflow-args").exists()


def test_with_docker_but_no_model_it_names_the_stage(tmp_path):
    docker = script(workspace(tmp_path) / "bin", "docker", "exit 0")
    proc = make("docker-imdb", tmp_path, [docker])
    assert proc.returncode != 0
    assert proc.stderr.splitlines()[0] == (
        "docker-imdb: no models/imdb/pyfunc/MLmodel: dvc "
        "repro imdb_evaluate (or dvc pull) writes it"
    )


def test_with_docker_it_builds_the_image_of_the_pyfunc_folder(tmp_path):
    (workspace(tmp_path) / "models/charlm/pyfunc").mkdir(parents=True)
    (tmp_path / "models/charlm/pyfunc/MLmodel").write_text("")
    docker = script(tmp_path / "bin", "docker", "exit 0")
    proc = make("docker-charlm", tmp_path, [docker])
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "mlflow-args").read_text().split() == [
        "models",
        "build-docker",
        "-m",
        "models/charlm/pyfunc",
        "-n",
        "rnnpipe-charlm",
        "--env-manager",
        "local",
    ]
