"""A team's MLflow tracking server: runs and the model registry in PostgreSQL, artifacts in S3
(or MinIO, or any S3-compatible store) behind the server's artifact proxy, so that a runner
needs only MLFLOW_TRACKING_URI=http://<host>:<port> and no object-store credentials.

    make tracking-server        # = python -m rnnpipe.core.tracking_server

The server's settings come from its environment (the flags override them):

    MLFLOW_BACKEND_STORE_URI      postgresql://<user>[:<password>]@<host>:5432/<database>
                                  (or PGPASSWORD / ~/.pgpass for the password)
    MLFLOW_ARTIFACTS_DESTINATION  s3://<bucket>[/<prefix>]
    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (or any other boto3 credential source),
    AWS_DEFAULT_REGION, MLFLOW_S3_ENDPOINT_URL (MinIO or another S3-compatible store)

Before `mlflow server` starts, the database and the bucket are checked (a connection, and a
small object written and deleted under the prefix), so a wrong password, key or bucket stops it
at once with a message naming which, instead of failing every runner's first upload later. The
database URI travels to `mlflow server` in its environment, never on its command line (which
`ps` shows to every user). MLflow's job runner (GenAI evaluation and trace roll-ups, which the
pipeline does not use) is off unless MLFLOW_SERVER_ENABLE_JOB_EXECUTION=true.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from rnnpipe.core.errors import PipelineError

NAME = "python -m rnnpipe.core.tracking_server"  # what `make tracking-server` runs
CHECK_TIMEOUT_S = 10


def store_uri(uri: str) -> str:
    """A PostgreSQL URI with the psycopg 3 driver (the one `.[team]` installs) unless it names
    a driver already; any other store is left as it is."""
    for bare in ("postgresql://", "postgres://"):
        if uri.startswith(bare):
            return "postgresql+psycopg://" + uri[len(bare) :]
    return uri


def redact(uri: str) -> str:
    """`uri` with its password replaced by ***, for messages and logs."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def check_database(uri: str, timeout: int = CHECK_TIMEOUT_S) -> None:
    """Connect to the PostgreSQL database of `uri` and run `select 1`."""
    if not uri.startswith("postgresql"):
        return
    try:
        import psycopg
    except ImportError:
        raise PipelineError("psycopg is not installed: pip install -e '.[team]'") from None
    conninfo = "postgresql://" + uri.split("://", 1)[1]  # libpq's form, no driver
    try:
        with psycopg.connect(conninfo, connect_timeout=timeout) as conn:
            conn.execute("select 1")
    except psycopg.Error as e:
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PipelineError(f"cannot use the backend store {redact(uri)}: {detail}") from None


def check_bucket(destination: str, timeout: int = CHECK_TIMEOUT_S) -> None:
    """Write and delete a small object under `destination` (s3://bucket/prefix) with the
    server's credentials: what every artifact upload through the proxy will do."""
    parts = urlsplit(destination)
    if parts.scheme != "s3":
        return
    try:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        raise PipelineError("boto3 is not installed: pip install -e '.[team]'") from None
    bucket, prefix = parts.netloc, parts.path.strip("/")
    endpoint = os.environ.get("MLFLOW_S3_ENDPOINT_URL") or None
    where = f"{destination} (endpoint {endpoint or 'AWS S3'})"
    key = "/".join(p for p in (prefix, f".rnnpipe-write-check-{uuid.uuid4().hex}") if p)
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            config=Config(
                connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 2}
            ),
        )
        s3.put_object(Bucket=bucket, Key=key, Body=b"rnnpipe tracking server write check\n")
        s3.delete_object(Bucket=bucket, Key=key)
    except ClientError as e:
        err = e.response.get("Error", {})
        code = err.get("Code") or e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        hint = {
            "InvalidAccessKeyId": "the access key is unknown: check AWS_ACCESS_KEY_ID",
            "SignatureDoesNotMatch": "the secret key is wrong: check AWS_SECRET_ACCESS_KEY",
            "NoSuchBucket": f"create the bucket {bucket} first",
            "AccessDenied": f"the credentials may not write to {bucket}: check their policy",
        }.get(str(code), err.get("Message", ""))
        raise PipelineError(f"cannot write artifacts to {where}: {code}: {hint}") from None
    except BotoCoreError as e:
        raise PipelineError(f"cannot write artifacts to {where}: {e}") from None


def server_command(
    mlflow: str, destination: str, host: str, port: int, workers: int | None, extra: list[str]
) -> list[str]:
    """`mlflow server` with the artifact proxy; the backend store comes from the environment."""
    cmd = [
        mlflow,
        "server",
        "--artifacts-destination",
        destination,
        "--serve-artifacts",
        "--host",
        host,
        "--port",
        str(port),
    ]
    if workers:
        cmd += ["--workers", str(workers)]
    return cmd + extra


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=NAME,
        description="Start an MLflow tracking server for a team: PostgreSQL for runs and the "
        "registry, an S3 bucket for artifacts behind the server's proxy. Arguments "
        "after `--` go to `mlflow server` (e.g. -- --allowed-hosts "
        "mlflow.example.org).",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default: %(default)s; 0.0.0.0 for other machines)",
    )
    parser.add_argument("--port", type=int, default=5000, help="(default: %(default)s)")
    parser.add_argument(
        "--workers", type=int, default=None, help="server worker processes (default: mlflow's)"
    )
    parser.add_argument(
        "--backend-store-uri",
        default=os.environ.get("MLFLOW_BACKEND_STORE_URI"),
        help="default: $MLFLOW_BACKEND_STORE_URI (postgresql://...)",
    )
    parser.add_argument(
        "--artifacts-destination",
        default=os.environ.get("MLFLOW_ARTIFACTS_DESTINATION"),
        help="default: $MLFLOW_ARTIFACTS_DESTINATION (s3://bucket/prefix)",
    )
    parser.add_argument(
        "--no-check",
        action="store_true",
        help="start without checking the database and the bucket first",
    )
    parser.add_argument(
        "--check-only", action="store_true", help="check the database and the bucket, then exit"
    )
    args, extra = parser.parse_known_args(argv)
    if extra and extra[0] == "--":
        extra = extra[1:]
    elif extra:
        parser.error(
            f"unrecognized arguments: {' '.join(extra)} (put mlflow server's own options after --)"
        )
    args.extra = extra
    return args


def start(args: argparse.Namespace) -> None:
    if not args.backend_store_uri:
        raise PipelineError(
            "no backend store: set MLFLOW_BACKEND_STORE_URI (postgresql://"
            "user@host:5432/database) or pass --backend-store-uri"
        )
    if not args.artifacts_destination:
        raise PipelineError(
            "no artifact store: set MLFLOW_ARTIFACTS_DESTINATION "
            "(s3://bucket/prefix) or pass --artifacts-destination"
        )
    uri = store_uri(args.backend_store_uri)
    if not args.no_check:
        check_database(uri)
        check_bucket(args.artifacts_destination)
        print(
            f"{NAME}: {redact(uri)} and {args.artifacts_destination} are reachable", file=sys.stderr
        )
    if args.check_only:
        return
    bin_dir = str(Path(sys.executable).parent)  # the venv's mlflow (and its uvicorn) first
    env = dict(
        os.environ,
        MLFLOW_BACKEND_STORE_URI=uri,
        PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""),
    )
    # MLflow 3's job runner (GenAI evaluation, trace roll-ups: nothing this project uses)
    # starts six more processes of about 250 MB each; set the variable to true to have it
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    mlflow = shutil.which("mlflow", path=env["PATH"])
    if mlflow is None:
        raise PipelineError("the mlflow command is not installed")
    print(
        f"{NAME}: runners set MLFLOW_TRACKING_URI=http://{args.host}:{args.port} "
        f"(runs and registry: {redact(uri)}; artifacts: {args.artifacts_destination}, "
        "through the server)",
        file=sys.stderr,
        flush=True,
    )
    os.execve(
        mlflow,
        server_command(
            mlflow, args.artifacts_destination, args.host, args.port, args.workers, args.extra
        ),
        env,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else list(argv))
    try:
        start(args)
    except PipelineError as e:
        print(f"{NAME}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
