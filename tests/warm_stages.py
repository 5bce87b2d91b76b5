"""The tests' `rnnpipe` and `dvc` (`stand_in`, `stand_in_dvc`), and a warm runner for the commands
the tests start.

Every `rnnpipe` command is a fresh process that imports TensorFlow, Keras, MLflow or Great
Expectations: 5-8 s of CPU before it does anything, which on tiny data is most of its time.
The server (`python -m tests.warm_stages serve SOCKET`) imports those libraries once; the
tests' `rnnpipe` (tests/conftest.py) hands it each command with its argv, working directory,
environment and stdin/stdout/stderr, and the server forks a child that runs
`rnnpipe.cli.main` and exits with its status. The child imports rnnpipe itself, so coverage
(started first when asked) sees the package load. `python -m tests.warm_stages run MODULE
ARGS` does the same for `python -m MODULE ARGS` (the distributed search's processes).

The command's process stays the one the test holds, and ends as the child does:
- the child's exit status comes back (a signal too: the command then kills itself with it);
- SIGTERM, SIGINT or SIGHUP sent to the command go on to the child;
- a command killed outright (SIGKILL, as the tests' crashes are) loses its child at once: the
  child sees the socket close and kills itself with SIGKILL.

The tests' `dvc` (tests/conftest.py: DVC) goes to the same server, without coverage.

These start cold, like a user's: `rnnpipe <project> serve` (it becomes `mlflow models serve`),
a command whose KERAS_BACKEND is not the server's, and any command with RNNPIPE_TEST_COLD=1.
RNNPIPE_TEST_COLD_STAGES=1 (tests/conftest.py) starts no server: everything cold.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import runpy
import signal
import socket
import sys
import threading
import traceback

SOCKET_ENV = "RNNPIPE_TEST_WARM_SOCKET"
BACKEND_ENV = "RNNPIPE_TEST_WARM_BACKEND"  # the Keras backend the server imported
COVERAGE_ENV = "RNNPIPE_TEST_COVERAGE"
COLD_ENV = "RNNPIPE_TEST_COLD"
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


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


def run_module(name: str) -> int:
    """`python -m name` with sys.argv as it stands."""
    start_coverage()
    runpy.run_module(name, run_name="__main__", alter_sys=True)
    return 0


def run_dvc() -> int:
    from dvc.cli import main

    return main(sys.argv[1:]) or 0


def warm_socket() -> str | None:
    """The server to hand this process's command to, or None to run it here."""
    path = os.environ.get(SOCKET_ENV)
    if not path or os.environ.get(COLD_ENV) == "1":
        return None
    if os.environ.get("KERAS_BACKEND", "tensorflow") != os.environ.get(BACKEND_ENV):
        return None  # the server imported another backend
    return path


def stand_in() -> int:
    """The tests' `rnnpipe` command."""
    path = warm_socket()
    if path and "serve" not in sys.argv[2:3]:  # serve execs mlflow: a process of its own
        return hand_over(path, {"program": "rnnpipe", "argv": sys.argv})
    return run_rnnpipe()


def stand_in_dvc() -> int:
    """The tests' `dvc` command (no coverage: it runs none of rnnpipe's code)."""
    path = warm_socket()
    if path:
        return hand_over(path, {"argv": sys.argv, "program": "dvc"})
    return run_dvc()


def hand_over(path: str, request: dict) -> int:
    """Run `request` in the warm server's child; end as it ended."""
    client = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    client.connect(path)
    request |= {"cwd": os.getcwd(), "env": dict(os.environ)}
    socket.send_fds(client, [json.dumps(request).encode()], [0, 1, 2])
    child = int(client.recv(32))

    def forward(signum, frame) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signum)

    for signum in FORWARDED:
        signal.signal(signum, forward)
    answer = client.recv(32)
    code = int(answer) if answer else 1
    if code < 0:  # the child died of a signal: so does this process
        if -code in FORWARDED:
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


def run_child(conn: socket.socket, fds: list[int], request: dict) -> None:
    """In the forked child: become the command's process, run it, exit with its status."""
    for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in any Python process
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = request["argv"]

    def client_gone() -> None:
        # the command that handed this over was killed outright: a crash, so no clean-up
        with contextlib.suppress(OSError):
            conn.recv(1)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=client_gone, daemon=True).start()
    status = 1
    programs = {
        "rnnpipe": run_rnnpipe,
        "dvc": run_dvc,
        "module": lambda: run_module(request["module"]),
    }
    try:
        status = programs[request["program"]]()
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        traceback.print_exc()
    atexit._run_exitfuncs()  # what a process does at exit: the params trace, coverage's save
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def report(conn: socket.socket, pid: int) -> None:
    """In the server: wait for a child, send its exit status (negative: a signal)."""
    _, status = os.waitpid(pid, 0)
    with contextlib.suppress(OSError):
        conn.send(str(os.waitstatus_to_exitcode(status)).encode())
    conn.close()


def serve(path: str) -> None:
    # the libraries the commands import; not rnnpipe (each child imports it, under coverage)
    import dvc.cli.parser  # noqa: F401
    import dvc.repo  # noqa: F401
    import great_expectations  # noqa: F401
    import keras  # noqa: F401
    import mlflow  # noqa: F401
    import pandas  # noqa: F401
    import sklearn  # noqa: F401

    server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    server.bind(path)
    server.listen(16)
    print("ready", flush=True)
    while True:
        conn, _ = server.accept()
        message, fds, _, _ = socket.recv_fds(conn, 1 << 22, 3)
        pid = os.fork()
        if pid == 0:
            server.close()
            run_child(conn, fds, json.loads(message))
        for fd in fds:
            os.close(fd)
        conn.send(str(pid).encode())
        threading.Thread(target=report, args=(conn, pid), daemon=True).start()


def python_module(name: str, *args: str) -> list[str]:
    """The command line that runs `python -m name args` through the warm server when the
    environment names one (and cold otherwise)."""
    return [sys.executable, "-m", "tests.warm_stages", "run", name, *args]


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2])
    elif sys.argv[1] == "run":
        name, sys.argv = sys.argv[2], [sys.argv[2], *sys.argv[3:]]
        path = warm_socket()
        sys.exit(
            hand_over(path, {"program": "module", "module": name, "argv": sys.argv})
            if path
            else run_module(name)
        )
    else:
        sys.exit("usage: python -m tests.warm_stages serve SOCKET | run MODULE [ARGS]")
