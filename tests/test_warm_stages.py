"""The warm runner (tests/warm_stages.py) ends a command as a process of its own would end:
its exit status, a signal sent to it, a kill."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import pytest

from tests.conftest import warm, without_coverage
from tests.warm_stages import python_module

pytestmark = pytest.mark.slow  # starts this worker's warm runner when no test has yet


def warm_env() -> dict[str, str]:
    env = warm(without_coverage(os.environ))
    if "RNNPIPE_TEST_WARM_SOCKET" not in env:
        pytest.skip("RNNPIPE_TEST_COLD_STAGES=1: no warm runner")
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait(until, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not until():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_the_exit_status_comes_back():
    proc = subprocess.run(
        python_module("json.tool", "--no-such-option"),
        env=warm_env(),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2  # argparse's
    assert "unrecognized arguments: --no-such-option" in proc.stderr


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_a_signal_to_the_command_ends_the_forked_child_too(how):
    port = free_port()
    proc = subprocess.Popen(
        python_module("http.server", str(port), "--bind", "127.0.0.1"),
        env=warm_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait(lambda: listening(port))  # the child (forked from the runner) serves
        proc.send_signal(getattr(signal, how))
        # SIGTERM goes on to the child, which dies of it, and so does the command;
        # SIGKILL ends the command at once, and the child sees it go
        assert proc.wait(timeout=30) == -getattr(signal, how)
        wait(lambda: not listening(port))
    finally:
        proc.kill()
        proc.wait()
