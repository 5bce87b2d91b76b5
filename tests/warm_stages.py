"""The tests' `rnnpipe` (`stand_in`), and a warm runner for the stage commands `dvc` starts.

Every stage is a fresh `rnnpipe` process that imports TensorFlow, Keras, MLflow or Great
Expectations: 5-8 s of CPU before it does anything, which on tiny data is most of its time.
The server (`python -m tests.warm_stages SOCKET`) imports those libraries once; the tests'
`rnnpipe` (tests/conftest.py) hands it each command run by DVC (DVC_STAGE is set) with its
argv, working directory, environment and stdin/stdout/stderr, and the server forks a child
that runs `rnnpipe.cli.main` and exits with its status. The child imports rnnpipe itself, so
coverage (started first when asked) sees the package load. Commands run by the tests
themselves (the CLI, servers, searches that the tests kill) start cold, like a user's.

RNNPIPE_TEST_COLD_STAGES=1 turns it off: every stage a fresh process.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import sys
import threading
import traceback

SOCKET_ENV = "RNNPIPE_TEST_WARM_SOCKET"
COVERAGE_ENV = "RNNPIPE_TEST_COVERAGE"


def start_coverage() -> None:
    """Measure this process when the tests asked for it (`make test`), and not what it starts:
    tests/conftest.py keeps coverage out of dvc and mlflow and hands its settings to rnnpipe
    under COVERAGE_ENV."""
    config = os.environ.pop(COVERAGE_ENV, None)
    if config:
        import coverage

        os.environ["COVERAGE_PROCESS_CONFIG"] = config
        coverage.process_startup(force=True)
        os.environ.pop("COVERAGE_PROCESS_CONFIG", None)


def run_rnnpipe() -> int:
    start_coverage()  # before rnnpipe is imported, so that its module lines count
    from rnnpipe.cli import main

    return main(sys.argv[1:]) or 0


def stand_in() -> int:
    """The tests' `rnnpipe` command: a stage that dvc runs (DVC_STAGE is set) goes to the warm
    runner when there is one; anything else runs here, as the console script would."""
    path = os.environ.get(SOCKET_ENV)
    if path and os.environ.get("DVC_STAGE"):
        return hand_over(path)
    return run_rnnpipe()


def run_child(conn: socket.socket, fds: list[int], request: dict) -> None:
    """In the forked child: become the stage process, run it, report its exit status."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = request["argv"]

    def client_gone() -> None:
        # the command that handed this over was killed (a test's timeout): stop too
        try:
            conn.recv(1)
        finally:
            os._exit(1)

    threading.Thread(target=client_gone, daemon=True).start()
    status = 1
    try:
        status = run_rnnpipe()
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        traceback.print_exc()
    atexit._run_exitfuncs()  # what a process does at exit: the params trace, coverage's save
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        conn.sendall(str(status).encode())
    finally:
        os._exit(status)


def serve(path: str) -> None:
    # the libraries the stages import; not rnnpipe (each child imports it, under coverage)
    import great_expectations  # noqa: F401
    import keras  # noqa: F401
    import mlflow  # noqa: F401
    import pandas  # noqa: F401
    import sklearn  # noqa: F401

    server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    server.bind(path)
    server.listen(16)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    print("ready", flush=True)
    while True:
        conn, _ = server.accept()
        message, fds, _, _ = socket.recv_fds(conn, 1 << 22, 3)
        if os.fork() == 0:
            server.close()
            run_child(conn, fds, json.loads(message))
        conn.close()
        for fd in fds:
            os.close(fd)


def hand_over(path: str) -> int:
    """In the tests' `rnnpipe`: run this command in the warm server; its exit status."""
    client = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    client.connect(path)
    request = {"argv": sys.argv, "cwd": os.getcwd(), "env": dict(os.environ)}
    socket.send_fds(client, [json.dumps(request).encode()], [0, 1, 2])
    answer = client.recv(16)
    return int(answer) if answer else 1  # no answer: the child died (a signal)


if __name__ == "__main__":
    serve(sys.argv[1])
