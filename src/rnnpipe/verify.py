"""`python -m rnnpipe.verify [--stages S ...] [--keep]` (`make verify [STAGES=...]`): do the
numbers in dvc.lock and reports/ hold on this machine?

It reruns the pipeline, or the named stages, in a scratch copy and compares every output with
the committed dvc.lock and reports; the workspace, its dvc.lock, its DVC cache and its MLflow
store are only read.

1. The scratch copy is a temporary folder holding the workspace's files that git does not
   ignore, as they are now (dvc.yaml, dvc.lock, params.yaml, src/, reports/, .dvc/config, also
   new files not yet added), with DVC's cache set to the workspace's (`dvc cache dir`), read
   only: stages run with `--no-commit`, so nothing new enters it. MLflow logs to
   `sqlite:///<copy>/mlflow.db`; the data mirror is the workspace's ($RNNPIPE_DATA_MIRROR,
   else `download.mirror`, else ../shared/data, made absolute).
2. No --stages: `dvc repro -f` reruns everything from the mirror. --stages: the inputs the
   named stages read are checked out of the cache (missing ones: run `dvc pull` first), then
   `dvc repro -f -s <stage>` runs each, in DAG order. Without train among the stages, evaluate
   finds no train run in the copy's store and logs to a run of its own, tagged with the
   model's SHA-256 (as after `dvc pull` into a fresh clone). register registers the model
   evaluate logged, so `<project>_register` brings `<project>_evaluate` along.
3. Each output of each stage (outs, metrics, plots) in the new dvc.lock is compared with the
   committed one, and with the committed file where git has it (reports/):
   - same bytes: the md5 of dvc.lock (and the committed file) again;
   - same results: a JSON, CSV or Markdown file whose values are all equal but ignored ones:
     timings, run ids and the registry's state. Ignored are the JSON keys, CSV columns and
     Markdown table columns named `seconds`, `minutes`, `time`, `duration`, `train_minutes`,
     `epoch_minutes`, `training minutes` or ending in `_seconds` or `_per_second` ("reviews /
     s" reads as reviews_per_second); `run_id`; and in promotion.json the registry's state
     (`version`, `champion_version`, `compared_with_version`, `champion_metric`, `decision`,
     `reason`: the copy's registry starts empty). Everything else compares exactly (numbers too);
     the committed file is the workspace's, else the cache's copy of dvc.lock's md5;
   - differs: anything else, with the first differing value (a binary file such as
     model.keras or an .npz: its md5; a folder such as models/<project>/pyfunc: the first of
     its files whose md5 differs from the cache's listing of the committed folder), or a stage
     that failed or did not run.

One line per stage, then a summary. Exit status: 0 when nothing differs, 1 when something
does, 2 on bad input (not a DVC project, no dvc.lock, an unknown stage, inputs missing from
the cache). --keep keeps the scratch copy and prints where it is.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from rnnpipe.core import machine
from rnnpipe.core.fetch import DEFAULT_MIRROR, MIRROR_ENV

SAME_BYTES, SAME_RESULTS, DIFFERS = "same bytes", "same results", "differs"
TIMING_NAMES = {
    "seconds",
    "minutes",
    "time",
    "duration",
    "train_minutes",
    "training_minutes",
    "epoch_minutes",
}
TIMING_SUFFIXES = ("_seconds", "_per_second")
RUN_KEYS = {"run_id"}
REGISTRY_KEYS = {
    "version",
    "champion_version",
    "compared_with_version",
    "champion_metric",
    "decision",
    "reason",
}  # in promotion.json
TEXT_SUFFIXES = (".json", ".csv", ".md")
# env of the user's MLflow runs, distributed search or an enclosing DVC stage: not the copy's
DROPPED_ENV = (
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_RUN_ID",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_EXPERIMENT_ID",
    "RNNPIPE_TUNE_RUN_ID",
    "DVC_ROOT",
    "DVC_STAGE",
    "DVC_EXP_NAME",
    "DVC_EXP_BASELINE_REV",
)
MISSING = object()


class BadInput(Exception):
    """Exit status 2."""


# -- comparison ---------------------------------------------------------------------------


def is_timing(name: str) -> bool:
    """A timing: a JSON key, CSV column or Markdown table column (see the module's doc)."""
    n = re.sub(r"\(.*?\)", "", str(name).lower()).strip()
    n = re.sub(r"\s*/\s*s$", "_per_second", n)
    n = re.sub(r"[^a-z0-9]+", "_", n).strip("_")
    return n in TIMING_NAMES or n.endswith(TIMING_SUFFIXES)


def _same(old, new) -> bool:
    """Equal, and of the same kind (1 and True are not; 1 and 1.0 are; NaN is NaN)."""
    if isinstance(old, bool) or isinstance(new, bool):
        return type(old) is type(new) and old == new
    if isinstance(old, int | float) and isinstance(new, int | float):
        return old == new or (old != old and new != new)
    return type(old) is type(new) and old == new


def json_diffs(old, new, keys_ignored: set[str], where: str = "") -> Iterator[tuple]:
    """(where, old, new, ignored) for each difference, in the old file's order."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(k for k in new if k not in old)]:
            at = f"{where}.{key}" if where else str(key)
            a, b = old.get(key, MISSING), new.get(key, MISSING)
            ignored = key in keys_ignored or is_timing(key)
            if a is MISSING or b is MISSING or ignored:
                if a is MISSING or b is MISSING or not _same(a, b):
                    yield at, a, b, ignored
            else:
                yield from json_diffs(a, b, keys_ignored, at)
    elif isinstance(old, list) and isinstance(new, list):
        for i in range(max(len(old), len(new))):
            a = old[i] if i < len(old) else MISSING
            b = new[i] if i < len(new) else MISSING
            if a is MISSING or b is MISSING:
                yield f"{where}[{i}]", a, b, False
            else:
                yield from json_diffs(a, b, keys_ignored, f"{where}[{i}]")
    elif not _same(old, new):
        yield where or "(the whole file)", old, new, False


def csv_diffs(old: str, new: str) -> Iterator[tuple]:
    a, b = list(csv.reader(io.StringIO(old))), list(csv.reader(io.StringIO(new)))
    header = a[0] if a else []
    for i in range(max(len(a), len(b))):
        ra = a[i] if i < len(a) else MISSING
        rb = b[i] if i < len(b) else MISSING
        if ra is MISSING or rb is MISSING or len(ra) != len(rb) or i == 0:
            if ra != rb:
                yield f"line {i + 1}", _row(ra), _row(rb), False
            continue
        for j, (x, y) in enumerate(zip(ra, rb, strict=True)):
            if x != y:
                name = header[j] if j < len(header) else str(j + 1)
                yield f"line {i + 1}, {name}", x, y, is_timing(name)


def _row(row) -> object:
    return row if row is MISSING else ",".join(row)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def md_diffs(old: str, new: str) -> Iterator[tuple]:
    """Line by line; in a table, cell by cell under the old file's header."""
    a, b = old.splitlines(), new.splitlines()
    header: list[str] | None = None
    for i in range(max(len(a), len(b))):
        x = a[i] if i < len(a) else MISSING
        y = b[i] if i < len(b) else MISSING
        if x is not MISSING and x.lstrip().startswith("|"):
            following = a[i + 1] if i + 1 < len(a) else ""
            if header is None and re.match(r"\s*\|\s*:?-{3,}", following):
                header = _cells(x)
        else:
            header = None
        if x == y:
            continue
        if (
            header is not None
            and y is not MISSING
            and y.lstrip().startswith("|")
            and len(_cells(x)) == len(_cells(y)) == len(header)
        ):
            for name, c, d in zip(header, _cells(x), _cells(y), strict=True):
                if c != d:
                    yield f"line {i + 1}, {name}", c, d, is_timing(name)
        else:
            yield f"line {i + 1}", x, y, False


def text_diffs(path: str, old: bytes, new: bytes) -> Iterator[tuple]:
    """The differences between two versions of a JSON, CSV or Markdown report."""
    a, b = old.decode("utf-8"), new.decode("utf-8")
    if path.endswith(".json"):
        keys = RUN_KEYS | (REGISTRY_KEYS if Path(path).name == "promotion.json" else set())
        yield from json_diffs(json.loads(a), json.loads(b), keys)
    elif path.endswith(".csv"):
        yield from csv_diffs(a, b)
    else:
        yield from md_diffs(a, b)


def _show(value, quoted: bool) -> str:
    """A value in a message: JSON's as JSON ("1" is not 1), a CSV or Markdown cell as it is."""
    if value is MISSING:
        return "<missing>"
    text = value if isinstance(value, str) and not quoted else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass
class Verdict:
    status: str
    detail: str = ""
    ignored: list[tuple[str, str]] = field(default_factory=list)  # (file, where): ignored


def compare_output(
    path: str,
    locked_md5: str | None,
    new_md5: str | None,
    committed: bytes | None,
    cached: bytes | None,
    new: bytes | None,
) -> Verdict:
    """One output: `committed` is the workspace's copy (git's reports), `cached` the cache's
    object of `locked_md5`, `new` the rerun's bytes."""
    if new_md5 is None:
        return Verdict(DIFFERS, f"{path}: not written by the rerun")
    reference = committed if committed is not None else cached
    committed_md5 = hashlib.md5(committed).hexdigest() if committed is not None else None
    if new_md5 == locked_md5 and committed_md5 in (None, new_md5):
        return Verdict(SAME_BYTES)
    if reference is not None and new is not None and path.endswith(TEXT_SUFFIXES):
        try:
            diffs = list(text_diffs(path, reference, new))
        except (UnicodeDecodeError, ValueError, csv.Error) as e:
            return Verdict(DIFFERS, f"{path}: cannot read it: {e}")
        for where, a, b, ignored in diffs:
            if not ignored:
                quoted = path.endswith(".json")
                return Verdict(
                    DIFFERS, f"{path}: {where}: {_show(a, quoted)} != {_show(b, quoted)}"
                )
        return Verdict(SAME_RESULTS, ignored=[(path, w) for w, *_ in diffs])
    if locked_md5 is None:
        return Verdict(DIFFERS, f"{path}: not in the committed dvc.lock")
    return Verdict(DIFFERS, f"{path}: md5 {committed_md5 or locked_md5} != {new_md5}")


def stage_verdict(verdicts: list[Verdict]) -> Verdict:
    for v in verdicts:
        if v.status == DIFFERS:
            return v
    if not any(v.status == SAME_RESULTS for v in verdicts):
        return Verdict(SAME_BYTES)
    names: dict[str, dict[str, None]] = {}  # file -> the names that differ, in order
    for path, where in (pair for v in verdicts for pair in v.ignored):
        name = re.sub(r"\[\d+\]", "[]", re.sub(r"^line \d+, ", "", where))
        names.setdefault(path, {})[name] = None
    detail = "; ".join(f"{path}: {', '.join(keys)}" for path, keys in names.items())
    return Verdict(SAME_RESULTS, f"only {detail} differ" if detail else "same values")


# -- the project ----------------------------------------------------------------------------


@dataclass
class Stage:
    name: str
    deps: list[str]
    outs: list[str]
    cached: set[str]  # the outs DVC caches (not `cache: false`)


def find_root(start: Path) -> Path:
    for folder in (start, *start.parents):
        if (folder / ".dvc").is_dir() and (folder / "dvc.yaml").is_file():
            return folder
    raise BadInput(f"{start} is not in a DVC project (no .dvc/ and dvc.yaml above it)")


def load_stages(root: Path) -> dict[str, Stage]:
    stages = {}
    for name, spec in (
        (yaml.safe_load((root / "dvc.yaml").read_text()) or {}).get("stages", {}).items()
    ):
        outs, cached = [], set()
        for kind in ("outs", "metrics", "plots"):
            for entry in spec.get(kind) or []:
                path, opts = next(iter(entry.items())) if isinstance(entry, dict) else (entry, {})
                outs.append(path)
                if (opts or {}).get("cache", True) is not False:
                    cached.add(path)
        deps = [d if isinstance(d, str) else next(iter(d)) for d in spec.get("deps") or []]
        stages[name] = Stage(name, deps, outs, cached)
    return stages


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def upstream(stage: Stage, stages: dict[str, Stage]) -> set[str]:
    """The stages whose outputs `stage` reads."""
    return {
        s.name
        for s in stages.values()
        if s.name != stage.name
        for out in s.outs
        for dep in stage.deps
        if _within(out, dep) or _within(dep, out)
    }


def select(names: list[str] | None, stages: dict[str, Stage]) -> list[str]:
    """The stages to rerun, in DAG order: all, or `names` (with the evaluate stage a named
    register needs)."""
    if not names:
        wanted = set(stages)
    else:
        unknown = [n for n in names if n not in stages]
        if unknown:
            raise BadInput(
                f"unknown stage(s) {', '.join(unknown)}; the stages are: {', '.join(stages)}"
            )
        wanted = set(names)
        for name in names:
            project, _, command = name.partition("_")
            if (
                command == "register"
                and f"{project}_evaluate" in stages
                and f"{project}_evaluate" not in wanted
            ):
                print(
                    f"verify: {name} registers the model {project}_evaluate logs to MLflow: "
                    f"rerunning {project}_evaluate too",
                    file=sys.stderr,
                )
                wanted.add(f"{project}_evaluate")
    done: list[str] = []

    def visit(name: str, seen: tuple = ()) -> None:
        if name in done or name in seen:
            return
        for up in sorted(upstream(stages[name], stages), key=list(stages).index):
            visit(up, (*seen, name))
        if name in wanted:
            done.append(name)

    for name in stages:
        visit(name)
    return done


def lock_outs(lock: dict) -> dict[str, dict[str, dict]]:
    """stage -> out path -> its dvc.lock entry (md5, hash)."""
    return {
        name: {o["path"]: o for o in stage.get("outs") or []}
        for name, stage in (lock.get("stages") or {}).items()
    }


def cache_object(cache: Path, entry: dict) -> Path:
    md5 = entry.get("md5", "")
    if entry.get("hash") == "md5":  # DVC 3
        return cache / "files" / "md5" / md5[:2] / md5[2:]
    return cache / md5[:2] / md5[2:]


def in_cache(cache: Path, entry: dict) -> bool:
    obj = cache_object(cache, entry)
    if not obj.is_file():
        return False
    if entry.get("md5", "").endswith(".dir"):
        kind = {"hash": entry.get("hash")}
        return all(in_cache(cache, kind | {"md5": f["md5"]}) for f in json.loads(obj.read_text()))
    return True


# -- the scratch copy -------------------------------------------------------------------------


def _git_files(root: Path) -> list[str]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError) as e:
        raise BadInput(f"cannot list the project's files with git in {root}: {e}") from None
    return [p for p in out.stdout.decode().split("\0") if p]


def make_copy(root: Path, copy: Path, cache: Path) -> None:
    for rel in _git_files(root):
        src = root / rel
        if not (src.is_file() or src.is_symlink()):
            continue  # deleted in the working tree
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, copy / rel, follow_symlinks=False)
    (copy / ".dvc").mkdir(exist_ok=True)
    (copy / ".dvc" / "config.local").write_text(f"[cache]\n    dir = {cache}\n    type = copy\n")
    subprocess.run(["git", "init", "-q"], cwd=copy, check=True)


def mirror(root: Path) -> Path | None:
    """The data mirror the workspace's stages use, absolute; None when params.yaml gives the
    projects different ones (each stage then reads its own param)."""
    value = os.environ.get(MIRROR_ENV)
    if not value:
        try:
            params = yaml.safe_load((root / "params.yaml").read_text()) or {}
        except OSError:
            params = {}
        found = {
            (p.get("download") or {}).get("mirror") or DEFAULT_MIRROR
            for p in params.values()
            if isinstance(p, dict) and "download" in p
        }
        if len(found) > 1:
            return None
        value = found.pop() if found else DEFAULT_MIRROR
    return (root / value).resolve()


def environment(root: Path, copy: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{copy / 'mlflow.db'}"
    folder = mirror(root)
    if folder is not None:
        env[MIRROR_ENV] = str(folder)
    bindir = str(Path(sys.executable).parent)  # the venv's dvc and rnnpipe, when not on PATH
    if bindir not in env.get("PATH", "").split(os.pathsep):
        env["PATH"] = os.pathsep.join(p for p in (env.get("PATH"), bindir) if p)
    return env


def dvc(env: dict[str, str]) -> str:
    found = shutil.which("dvc", path=env.get("PATH"))
    if not found:
        raise BadInput("no `dvc` on PATH (make setup; or run it with .venv/bin/python)")
    return found


def stream(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run `cmd`, its output going on to stderr as it comes; (exit status, output)."""
    lines = []
    with subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    ) as proc:
        for line in proc.stdout:
            sys.stderr.write(line)
            lines.append(line)
    return proc.returncode, "".join(lines)


# -- main ---------------------------------------------------------------------------------------


def checkout_inputs(
    selected: list[str],
    stages: dict[str, Stage],
    copy: Path,
    cache: Path,
    committed: dict[str, dict[str, dict]],
    dvc_cmd: str,
    env: dict[str, str],
) -> None:
    """Check out of the cache what the selected stages read and neither git nor an earlier
    selected stage provides."""
    wanted, missing = set(), []
    for i, name in enumerate(selected):
        made_here = {out for s in selected[:i] for out in stages[s].outs}
        for dep in stages[name].deps:
            if (
                any(_within(dep, out) or _within(out, dep) for out in made_here)
                or (copy / dep).exists()
            ):
                continue
            for producer in stages.values():
                for out in producer.outs:
                    if not (_within(out, dep) or _within(dep, out)) or (copy / out).exists():
                        continue
                    entry = committed.get(producer.name, {}).get(out)
                    if entry is None or not in_cache(cache, entry):
                        missing.append(out)
                    else:
                        wanted.add(out)
    if missing:
        raise BadInput(
            f"not in the DVC cache {cache}: {', '.join(sorted(set(missing)))}: run "
            "`dvc pull` first (or `dvc repro` the stages that make them)"
        )
    if wanted:
        code, output = stream([dvc_cmd, "checkout", "-q", *sorted(wanted)], copy, env)
        if code:
            raise BadInput(f"dvc checkout of the stages' inputs in the scratch copy exited {code}")


def compare_stage(
    name: str,
    stages: dict[str, Stage],
    copy: Path,
    cache: Path,
    committed: dict[str, dict[str, dict]],
    rerun: dict[str, dict[str, dict]],
    snapshot: dict[str, bytes],
) -> Verdict:
    if name not in committed:
        return Verdict(DIFFERS, "not in the committed dvc.lock")
    old, new = committed[name], rerun.get(name, {})
    verdicts = []
    for path in [*old, *(p for p in new if p not in old)]:
        locked, fresh = old.get(path), new.get(path)
        cached = None
        if locked is not None and path.endswith(TEXT_SUFFIXES):
            obj = cache_object(cache, locked)
            cached = obj.read_bytes() if obj.is_file() else None
        target = copy / path
        text = target.read_bytes() if path.endswith(TEXT_SUFFIXES) and target.is_file() else None
        v = compare_output(
            path,
            locked and locked.get("md5"),
            fresh and fresh.get("md5"),
            snapshot.get(path),
            cached,
            text,
        )
        if v.status == DIFFERS and locked is not None and target.is_dir():
            v.detail = folder_diff(path, cache_object(cache, locked), target) or v.detail
        verdicts.append(v)
    return stage_verdict(verdicts)


def folder_diff(path: str, listing: Path, folder: Path) -> str | None:
    """The first file of the folder output `path` whose md5 in the rerun's `folder` differs
    from the committed folder's (DVC's .dir `listing` in the cache), as a message; None when
    the listing is not in the cache or no file differs."""
    try:
        old = {e["relpath"]: e["md5"] for e in json.loads(listing.read_text())}
    except (OSError, ValueError, TypeError, KeyError):
        return None
    new = {
        f.relative_to(folder).as_posix(): hashlib.md5(f.read_bytes()).hexdigest()
        for f in folder.rglob("*")
        if f.is_file()
    }
    for rel in sorted(old.keys() | new.keys()):
        a, b = old.get(rel, "<missing>"), new.get(rel, "<missing>")
        if a != b:
            return f"{path}/{rel}: md5 {a} != {b}"
    return None


def cache_dir(root: Path, dvc_cmd: str, env: dict[str, str]) -> Path:
    proc = subprocess.run(
        [dvc_cmd, "cache", "dir"], cwd=root, env=env, capture_output=True, text=True
    )
    if proc.returncode or not proc.stdout.strip():
        raise BadInput(f"`dvc cache dir` in {root} failed: {proc.stderr.strip()}")
    return Path(proc.stdout.strip().splitlines()[-1])


def rerun(
    names: list[str] | None,
    selected: list[str],
    stages: dict[str, Stage],
    copy: Path,
    cache: Path,
    committed: dict[str, dict[str, dict]],
    dvc_cmd: str,
    env: dict[str, str],
) -> tuple[list[str], tuple[str | None, int] | None]:
    """Rerun in the copy: (the stages that ran through, (the stage that failed, exit status))."""
    ran: list[str] = []
    if not names:
        code, output = stream([dvc_cmd, "repro", "-f", "--no-commit"], copy, env)
        ran = re.findall(r"Running stage '([^']+)'", output)
        return (ran[:-1], (ran[-1] if ran else None, code)) if code else (ran, None)
    checkout_inputs(selected, stages, copy, cache, committed, dvc_cmd, env)
    for name in selected:
        code, _ = stream([dvc_cmd, "repro", "-f", "--no-commit", "-s", name], copy, env)
        if code:
            return ran, (name, code)
        ran.append(name)
    return ran, None


def report(
    selected: list[str],
    ran: list[str],
    failure: tuple[str | None, int] | None,
    compare: dict[str, Verdict],
) -> int:
    """One line per stage, the summary; the exit status."""
    counts = {SAME_BYTES: 0, SAME_RESULTS: 0, DIFFERS: 0}
    width = max(map(len, selected)) + 1
    for name in selected:
        if name in ran:
            v = compare[name]
        elif failure and failure[0] == name:
            v = Verdict(DIFFERS, f"dvc repro failed (exit {failure[1]}; its output is above)")
        else:
            v = Verdict(
                DIFFERS,
                f"not rerun ({failure[0] or 'dvc repro'} failed first)" if failure else "not rerun",
            )
        counts[v.status] += 1
        detail = f": {v.detail}" if v.status == DIFFERS else f" ({v.detail})" if v.detail else ""
        print(f"{name + ':':<{width}} {v.status}{detail}")
    print(
        f"verify: {len(selected)} stage(s): {counts[SAME_BYTES]} same bytes, "
        f"{counts[SAME_RESULTS]} same results, {counts[DIFFERS]} differ"
    )
    if counts[DIFFERS]:
        print(
            f"verify: this machine's CPU is {machine.cpu()}; trained models and what follows "
            f"them reproduce exactly only on the kind of CPU that made dvc.lock (README.md, "
            f'"Results of the default profile", names it; MLflow\'s train runs: tag cpu)'
        )
    return 1 if counts[DIFFERS] else 0


def verify(root: Path, names: list[str] | None, keep: bool) -> int:
    stages = load_stages(root)
    if not (root / "dvc.lock").is_file():
        raise BadInput(f"no dvc.lock in {root}: nothing to compare with (dvc repro first)")
    selected = select(names, stages)
    committed = lock_outs(yaml.safe_load((root / "dvc.lock").read_text()) or {})
    scratch = Path(tempfile.mkdtemp(prefix="rnnpipe-verify-"))
    copy = scratch / root.name
    env = environment(root, copy)
    try:
        dvc_cmd = dvc(env)
        cache = cache_dir(root, dvc_cmd, env)
        make_copy(root, copy, cache)
        if MIRROR_ENV not in env:
            print(
                f"verify: params.yaml names different data mirrors: each stage reads its "
                f"own, from {copy}",
                file=sys.stderr,
            )
        snapshot = {
            out: (copy / out).read_bytes()
            for name in selected
            for out in stages[name].outs
            if (copy / out).is_file()
        }
        print(
            f"verify: rerunning {'every stage' if not names else ', '.join(selected)} in {copy}",
            file=sys.stderr,
        )
        ran, failure = rerun(names, selected, stages, copy, cache, committed, dvc_cmd, env)
        new = lock_outs(yaml.safe_load((copy / "dvc.lock").read_text()) or {})
        return report(
            selected,
            ran,
            failure,
            {
                name: compare_stage(name, stages, copy, cache, committed, new, snapshot)
                for name in ran
            },
        )
    finally:
        if keep:
            print(f"verify: scratch copy kept in {copy}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rnnpipe.verify",
        description="Rerun the pipeline (or --stages) in a scratch copy from the DVC cache and "
        "compare every output with dvc.lock and the committed reports.",
    )
    parser.add_argument(
        "--stages",
        nargs="+",
        metavar="STAGE",
        help="only these stages (default: all), their inputs from the cache",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch copy")
    args = parser.parse_args(argv)
    try:
        return verify(find_root(Path.cwd()), args.stages, args.keep)
    except BadInput as e:
        print(f"verify: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
