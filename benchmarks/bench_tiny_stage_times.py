"""Where the tests' tiny pipeline spends its time: each stage of both projects run alone
(`dvc repro -s STAGE`, in dvc.yaml's order) through the tests' warm stage runner, as the tests
run it, without coverage.

    python benchmarks/bench_tiny_stage_times.py [--rounds 1]

Prints each stage's wall seconds (a column per round) and the totals.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import DVC, run, tiny_repo  # noqa: E402


def stage_times(folder: Path) -> dict[str, float]:
    repo, env = tiny_repo(folder)
    seconds = {}
    for stage in yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]:
        t = time.perf_counter()
        proc = run([str(DVC), "repro", "-s", stage], repo, env, check=False)
        seconds[stage] = time.perf_counter() - t
        if proc.returncode != 0:
            sys.exit(f"dvc repro -s {stage} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rounds = [stage_times(Path(tmp) / f"round{i}") for i in range(args.rounds)]
    for stage in rounds[0]:
        print(f"{stage:22}" + "".join(f"{r[stage]:7.1f}" for r in rounds))
    print(f"{'total':22}" + "".join(f"{sum(r.values()):7.1f}" for r in rounds))


if __name__ == "__main__":
    main()
