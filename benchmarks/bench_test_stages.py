"""The tests' tiny `dvc repro` of both projects, every stage a fresh process (cold) and through
the tests' warm stage runner (tests/warm_stages.py), one after the other on the same machine.

    python benchmarks/bench_test_stages.py [--rounds 1]

Prints each run's wall seconds, the ratio, and whether the metrics files came out the same.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import warm_stages  # noqa: E402
from tests.conftest import BIN, tiny_repo  # noqa: E402

OUTPUTS = [
    "reports/imdb/metrics.json",
    "reports/charlm/metrics.json",
    "models/imdb/hparams.json",
    "models/charlm/hparams.json",
]


def repro(folder: Path, warm: bool) -> tuple[float, dict[str, bytes]]:
    repo, env = tiny_repo(folder)
    if not warm:
        env.pop(warm_stages.SOCKET_ENV, None)
    t = time.perf_counter()
    proc = subprocess.run(
        [str(BIN / "dvc"), "repro"], cwd=repo, env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(
            f"dvc repro ({'warm' if warm else 'cold'}) exited {proc.returncode}:\n"
            f"{proc.stderr[-3000:]}"
        )
    return seconds, {name: (repo / name).read_bytes() for name in OUTPUTS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            cold, cold_out = repro(Path(tmp) / f"cold{i}", warm=False)
            warm, warm_out = repro(Path(tmp) / f"warm{i}", warm=True)
            same = [name for name in OUTPUTS if cold_out[name] == warm_out[name]]
            print(
                f"round {i + 1}: cold {cold:.0f} s, warm {warm:.0f} s, "
                f"cold/warm {cold / warm:.2f}; same files: {len(same)} of {len(OUTPUTS)}"
            )


if __name__ == "__main__":
    main()
