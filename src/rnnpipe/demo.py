"""`python -m rnnpipe.demo [--keep]` (`make demo`): every stage of both projects, download
through register and compare, on a slice of the real data with tiny models, in about 5 minutes
on a 2-core CPU, without touching the workspace.

1. A scratch copy of the project in $TMPDIR, made as `make verify` makes it
   (`rnnpipe.verify.make_copy`: the files git does not ignore), with the demo profile
   (params_demo.yaml, or --params) as its params.yaml, no dvc.lock, and a DVC cache of its
   own that stays empty (`dvc repro --no-commit`): the workspace's params.yaml, dvc.lock,
   outputs and DVC cache are only read.
2. Beside it, a mirror folder holding the slice of the real data (the workspace's mirror:
   $RNNPIPE_DATA_MIRROR, else `download.mirror`, else ../shared/data; or --mirror), in the
   official formats, so that download and ingest run as they do on the whole data. The slice is
   what the profile's raw-data gates expect: an aclImdb_v1.tar.gz with the first
   `imdb.check_raw.test_size / 2` reviews (ids 0, 1, ...) of test/pos and test/neg, the first
   `train_valid_size / 2` of train/pos and train/neg, the first `unsup_size` of train/unsup
   (with `imdb.ingest.include_unsup`), each urls_<folder>.txt cut to match; and the Gutenberg
   file with its licence header and footer around the novel's first `charlm.check_raw.min_chars`
   characters, to the end of that line. Nothing is downloaded.
3. `dvc repro -f --no-commit` in the copy. The runs go to the user's MLflow store (the
   workspace's sqlite:///<root>/mlflow.db, or $MLFLOW_TRACKING_URI) under experiments of their
   own, rnnpipe-<project>-demo ($RNNPIPE_EXPERIMENT_SUFFIX=-demo, read by
   rnnpipe.core.tracking.experiment_name), with their artifacts in the workspace's mlartifacts/
   like every run's; the models are registered under the profile's names, which must differ
   from params.yaml's, so the workspace's champions stay.
4. A table of the stages' times, the headline metrics (reports/imdb/metrics.json test
   accuracy, reports/charlm/metrics.json test loss) and where to look (the `mlflow ui` command).
   --keep keeps the scratch folder (its reports/, dvc.lock, the sliced mirror) and prints where
   it is; the runs stay in the user's store either way.

Exit status: 0 when every stage ran, 1 when `dvc repro` failed or skipped a stage, 2 on bad
input (not a DVC project, no data to slice, a profile that does not validate or would register
under the workspace's model names).
"""

from __future__ import annotations

import argparse
import codecs
import gzip
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml

from rnnpipe import verify
from rnnpipe.core.errors import PipelineError
from rnnpipe.core.fetch import DEFAULT_MIRROR, MIRROR_ENV
from rnnpipe.core.params import Params, load_params
from rnnpipe.verify import BadInput

PROFILE = "params_demo.yaml"
PROJECTS = ("imdb", "charlm")
# what rnnpipe.core.tracking.experiment_name appends to rnnpipe-<project>
SUFFIX_ENV = "RNNPIPE_EXPERIMENT_SUFFIX"
SUFFIX = "-demo"
STAGE_LINE = re.compile(r"Running stage '([^']+)'")
# Run in the workspace, with the user's environment and SUFFIX_ENV: the store and the demo's
# experiments, made here by tracking.setup as a stage of the workspace would make them, so that
# their artifacts go to the workspace's mlartifacts/ (the copy's stages, whose root is the copy,
# find them made).
STORE_SCRIPT = """\
import json
import sys

from rnnpipe.core import tracking

uri = tracking.tracking_uri()
names = {p: tracking.experiment_name(p) for p in sys.argv[1:]}
for p in names:
    tracking.setup(p)
print(json.dumps({"uri": uri, "names": names}))
"""


# -- the slice ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Slice:
    reviews: dict[tuple[str, str], int]  # (split, folder) -> its first n reviews
    novel_chars: int  # at least this many characters of the novel
    novel_max_chars: int


def data_slice(params: Params) -> Slice:
    """The slice the profile's raw-data gates expect (see the module's doc)."""
    from rnnpipe.imdb.ingest import LABELS

    check = params.imdb.check_raw
    reviews = {}
    for split, key in (("train", "train_valid_size"), ("test", "test_size")):
        size = getattr(check, key)
        if size % 2 or size == 0:
            raise BadInput(
                f"imdb.check_raw.{key} ({size}): the demo takes half of it from "
                f"{split}/pos and half from {split}/neg, so it must be even and > 0"
            )
        reviews |= {(split, folder): size // 2 for folder in LABELS}
    if params.imdb.ingest.include_unsup:
        if check.unsup_size == 0:
            raise BadInput("imdb.check_raw.unsup_size is 0 but imdb.ingest.include_unsup is true")
        reviews[("train", "unsup")] = check.unsup_size
    novel = params.charlm.check_raw
    return Slice(reviews, novel.min_chars, novel.max_chars)


def _info(name: str, size: int = 0, folder: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = size, 0
    info.type, info.mode = (tarfile.DIRTYPE, 0o755) if folder else (tarfile.REGTYPE, 0o644)
    return info


def slice_imdb(src: Path, dest: Path, reviews: dict[tuple[str, str], int]) -> dict[str, int]:
    """Write to `dest` an aclImdb archive of the first n reviews (ids below n) of each folder
    `reviews` names, with its urls_<folder>.txt cut to n lines, the top-level files (README,
    imdb.vocab, ...) and nothing else; the same bytes for the same input (sorted names, mtime 0).
    Returns "split/folder" -> reviews kept."""
    from rnnpipe.imdb.ingest import FILE_NAME, URLS_NAME, check_member

    files: dict[str, bytes] = {}
    folders: set[str] = set()
    found = dict.fromkeys(reviews, 0)
    urls: dict[tuple[str, str], int] = {}
    try:
        with gzip.open(src, "rb") as gz, tarfile.open(fileobj=gz, mode="r|") as tar:
            for member in tar:
                check_member(member)
                parts = PurePosixPath(member.name).parts
                if member.isdir():
                    if len(parts) < 3 or reviews.get(parts[1:3]):
                        folders.add("/".join(parts))
                    continue
                if len(parts) == 2:  # aclImdb/README, aclImdb/imdb.vocab, ...
                    files[member.name] = tar.extractfile(member).read()
                elif len(parts) == 3 and (m := URLS_NAME.match(parts[2])):
                    n = reviews.get((parts[1], m.group(1)))
                    if n:
                        lines = tar.extractfile(member).read().splitlines(keepends=True)[:n]
                        files[member.name] = b"".join(lines)
                        urls[(parts[1], m.group(1))] = len(lines)
                elif len(parts) == 4 and (m := FILE_NAME.match(parts[3])):
                    n = reviews.get((parts[1], parts[2]))
                    if n and int(m.group(1)) < n:
                        files[member.name] = tar.extractfile(member).read()
                        found[(parts[1], parts[2])] += 1
                # anything else (the official archive's bag-of-words files): left out
    except FileNotFoundError:
        raise BadInput(f"no {src} to slice (--mirror: a folder holding the real data)") from None
    except (tarfile.TarError, EOFError, OSError) as e:
        raise BadInput(f"{src}: cannot read it as a tar.gz ({e})") from None
    except PipelineError as e:
        raise BadInput(str(e)) from None
    for (split, folder), n in reviews.items():
        if found[(split, folder)] != n:
            raise BadInput(
                f"{src}: aclImdb/{split}/{folder} has {found[(split, folder)]} "
                f"reviews with an id below {n}; the profile's imdb.check_raw asks "
                f"for {n}"
            )
        if urls.get((split, folder), n) != n:
            raise BadInput(
                f"{src}: aclImdb/{split}/urls_{folder}.txt has "
                f"{urls[(split, folder)]} lines, fewer than {n}"
            )
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") as f, gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar:
            for name in sorted(folders | set(files)):
                if name in files:
                    tar.addfile(_info(name, len(files[name])), io.BytesIO(files[name]))
                else:
                    tar.addfile(_info(name, folder=True))
    return {f"{split}/{folder}": n for (split, folder), n in found.items()}


def slice_novel(src: Path, dest: Path, chars: int, max_chars: int, ingest) -> int:
    """Write to `dest` the Gutenberg file `src` with the novel cut to its first `chars`
    characters, to the end of that line (licence header and footer, line ends and byte-order
    mark as they were), so that charlm ingest (`ingest`: its params) cuts exactly that part.
    Returns its length, at most `max_chars`."""
    from rnnpipe.charlm.ingest import cut_novel, decode_text

    try:
        raw = src.read_bytes()
    except FileNotFoundError:
        raise BadInput(f"no {src} to slice (--mirror: a folder holding the real data)") from None
    try:
        text = decode_text(raw, str(src))
        novel = cut_novel(text, ingest.start_marker, ingest.end_markers, ingest.header_markers)
    except PipelineError as e:
        raise BadInput(f"{src}: {e}") from None
    if len(novel) < chars:
        raise BadInput(
            f"{src}: the novel has {len(novel)} characters, fewer than the "
            f"{chars} of charlm.check_raw.min_chars"
        )
    part, end = "", chars - 1
    while len(part) < chars:  # the first line end at or after `chars` (trailing blanks out)
        end = novel.find("\n", end + 1)
        part = (novel if end < 0 else novel[:end]).rstrip()
        if end < 0:
            break
    if len(part) > max_chars:
        raise BadInput(
            f"the novel's first {chars} characters to the end of that line are "
            f"{len(part)}, more than charlm.check_raw.max_chars ({max_chars})"
        )
    start = text.index(novel)
    cut = text[:start] + part + "\n" + text[start + len(novel) :]
    assert cut_novel(cut, ingest.start_marker, ingest.end_markers, ingest.header_markers) == part
    if b"\r\n" in raw:
        cut = cut.replace("\n", "\r\n")
    bom = codecs.BOM_UTF8 if raw.startswith(codecs.BOM_UTF8) else b""
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(bom + cut.encode("utf-8"))
    return len(part)


def real_data(root: Path, mirror: Path | None, params: Params) -> dict[str, Path]:
    """project -> the real data file to slice: in `mirror`, else in the folder the workspace's
    download stage reads (rnnpipe.verify.mirror; each project's own when they differ)."""
    folder = mirror or verify.mirror(root)
    files = {}
    for project in PROJECTS:
        here = folder
        if here is None:
            raw = yaml.safe_load((root / "params.yaml").read_text()) or {}
            value = ((raw.get(project) or {}).get("download") or {}).get("mirror")
            here = (root / (value or DEFAULT_MIRROR)).resolve()
        files[project] = here / getattr(params, project).download.filename
    return files


def make_mirror(params: Params, sources: dict[str, Path], dest: Path) -> dict[str, object]:
    """The sliced mirror folder `dest`; what it holds."""
    part = data_slice(params)
    reviews = slice_imdb(sources["imdb"], dest / params.imdb.download.filename, part.reviews)
    chars = slice_novel(
        sources["charlm"],
        dest / params.charlm.download.filename,
        part.novel_chars,
        part.novel_max_chars,
        params.charlm.ingest,
    )
    return {"reviews": reviews, "novel_chars": chars}


# -- the profile and the store ----------------------------------------------------------------


def load_profile(root: Path, path: Path) -> Params:
    """The demo profile, validated; its model names must not be the workspace's."""
    try:
        params = load_params(path)
    except PipelineError as e:
        raise BadInput(str(e)) from None
    try:
        workspace = yaml.safe_load((root / "params.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        workspace = {}
    for project in PROJECTS:
        name = getattr(params, project).promote.model_name
        theirs = ((workspace.get(project) or {}).get("promote") or {}).get("model_name")
        if name == theirs:
            raise BadInput(
                f"{path}: {project}.promote.model_name is {name!r}, the workspace's "
                f"model name: the demo would register its models there and could "
                f"take the champion alias; name them apart (e.g. {name}{SUFFIX})"
            )
    return params


def start_store_check(root: Path) -> subprocess.Popen:
    """STORE_SCRIPT, started in the background (it imports Keras and MLflow: seconds)."""
    env = {k: v for k, v in os.environ.items() if k not in verify.DROPPED_ENV}
    env[SUFFIX_ENV] = SUFFIX
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return subprocess.Popen(
        [sys.executable, "-c", STORE_SCRIPT, *PROJECTS],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def store_answer(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate()
    if proc.returncode:
        raise BadInput(f"cannot open the MLflow store for the demo's experiments:\n{err[-2000:]}")
    return json.loads(out.strip().splitlines()[-1])


# -- the run ----------------------------------------------------------------------------------


def repro(
    dvc_cmd: str, copy: Path, env: dict[str, str]
) -> tuple[int, list[tuple[float, str]], float]:
    """`dvc repro -f --no-commit` in the copy, its output going on to stderr: (exit status,
    (time, line) of each line, the time it ended)."""
    events = []
    with subprocess.Popen(
        [dvc_cmd, "repro", "-f", "--no-commit"],
        cwd=copy,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    ) as proc:
        for line in proc.stdout:
            sys.stderr.write(line)
            events.append((time.monotonic(), line))
    return proc.returncode, events, time.monotonic()


def stage_times(events: Iterable[tuple[float, str]], end: float) -> list[tuple[str, float]]:
    """(stage, seconds) in the order DVC ran them: from its `Running stage` line to the
    next one's (the last: to `end`)."""
    starts = [(t, m.group(1)) for t, line in events if (m := STAGE_LINE.search(line))]
    return [
        (name, (starts[i + 1][0] if i + 1 < len(starts) else end) - t)
        for i, (t, name) in enumerate(starts)
    ]


def _minutes(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{m} min {s:02d} s" if m else f"{s} s"


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def headline(copy: Path) -> list[str]:
    """The demo's results, one line per project."""
    lines = []
    metrics, baseline = (
        _read(copy / "reports/imdb/metrics.json"),
        _read(copy / "reports/imdb/baseline.json"),
    )
    test = metrics.get("test", {})
    if "accuracy" in test:
        line = f"imdb:   test accuracy {test['accuracy']:.4f} ({test.get('n', '?')} reviews)"
        if "accuracy" in baseline.get("test", {}):
            line += f"; TF-IDF baseline {baseline['test']['accuracy']:.4f}"
        lines.append(line + _promotion(copy / "reports/imdb/promotion.json"))
    test = _read(copy / "reports/charlm/metrics.json").get("test", {})
    if "loss" in test:
        line = f"charlm: test loss {test['loss']:.4f} nats/char"
        if "bits_per_char" in test:
            line += f" ({test['bits_per_char']:.3f} bits)"
        lines.append(line + _promotion(copy / "reports/charlm/promotion.json"))
    return lines


def _promotion(path: Path) -> str:
    p = _read(path)
    if "model_name" not in p:
        return ""
    return (
        f"; registered {p['model_name']} version {p.get('version', '?')} ({p.get('decision', '?')})"
    )


def ui_command(uri: str) -> str:
    if uri.startswith(("http://", "https://")):
        return f"open {uri} (the tracking server)"
    return f"mlflow ui --backend-store-uri {uri}"


def demo(root: Path, profile: Path, mirror: Path | None, keep: bool) -> int:
    began = time.monotonic()
    params = load_profile(root, profile)
    sources = real_data(root, mirror, params)
    stages = verify.load_stages(root)
    scratch = Path(tempfile.mkdtemp(prefix="rnnpipe-demo-"))
    copy, sliced = scratch / root.name, scratch / "mirror"
    check = start_store_check(root)
    try:
        env = verify.environment(root, copy)
        dvc_cmd = verify.dvc(env)
        verify.make_copy(root, copy, copy / ".dvc" / "cache")
        shutil.copyfile(profile, copy / "params.yaml")
        (copy / "dvc.lock").unlink(missing_ok=True)
        held = make_mirror(params, sources, sliced)
        store = store_answer(check)
        names = ", ".join(store["names"].values())
        env["MLFLOW_TRACKING_URI"] = store["uri"]
        if os.environ.get("MLFLOW_REGISTRY_URI"):
            env["MLFLOW_REGISTRY_URI"] = os.environ["MLFLOW_REGISTRY_URI"]
        env[MIRROR_ENV] = str(sliced)
        env[SUFFIX_ENV] = SUFFIX
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        reviews = sum(held["reviews"].values())
        print(
            f"demo: {reviews} reviews and {held['novel_chars']} characters of the novel in "
            f"{sliced}; running every stage in {copy} (MLflow: {env['MLFLOW_TRACKING_URI']}, "
            f"experiments {names})",
            file=sys.stderr,
        )
        setup = time.monotonic() - began
        code, events, end = repro(dvc_cmd, copy, env)
        times = stage_times(events, end)
        return report(stages, times, code, setup, end - began, copy, store, env, keep)
    finally:
        if check.poll() is None:
            check.kill()
            check.wait()
        if keep:
            print(
                f"demo: scratch folder kept in {scratch} (the copy {copy}, the sliced data "
                f"{sliced})"
            )
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def report(
    stages: dict,
    times: list[tuple[str, float]],
    code: int,
    setup: float,
    total: float,
    copy: Path,
    store: dict,
    env: dict[str, str],
    keep: bool,
) -> int:
    ran = [name for name, _ in times]
    missing = [name for name in stages if name not in ran]
    if code == 0 and not missing:
        print(
            f"\ndemo: all {len(ran)} stages ran in {_minutes(total)} (set-up "
            f"{_minutes(setup)}: the scratch copy and the data slice)"
        )
    else:
        failed = (
            f"dvc repro exited {code} in {ran[-1]}" if code and ran else f"dvc repro exited {code}"
        )
        print(
            f"\ndemo: FAILED: {failed}; {len(missing)} stage(s) did not run"
            + (f": {', '.join(missing)}" if missing else "")
            + " (the output is above)"
        )
    width = max((len(n) for n in ran), default=5) + 2
    print(f"{'stage':<{width}}{'seconds':>8}")
    for name, seconds in times:
        print(f"{name:<{width}}{seconds:>8.1f}")
    print(f"{'total':<{width}}{sum(s for _, s in times):>8.1f}")
    lines = headline(copy)
    if lines:
        print("\n" + "\n".join(lines))
    uri = env["MLFLOW_TRACKING_URI"]
    print("\nWhere to look:")
    models = ", ".join(
        _read(copy / f"reports/{p}/promotion.json").get("model_name", "") for p in PROJECTS
    ).strip(", ")
    print(f"  {ui_command(uri)}")
    print(
        f"    experiments {', '.join(store['names'].values())}"
        + (f"; registered models {models}" if models else "")
    )
    if keep:
        print(f"  {copy / 'reports'}/    metrics, plots, promotion decisions, compare.md")
    else:
        print("  python -m rnnpipe.demo --keep    keeps the scratch copy (its reports/)")
    return 0 if code == 0 and not missing else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rnnpipe.demo",
        description="Every stage of both projects on a slice of the real data, tiny models, "
        "in a scratch copy; the runs go to your MLflow store under experiments of "
        "their own.",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the scratch folder (the copy's reports/, the sliced data)",
    )
    parser.add_argument(
        "--params",
        type=Path,
        metavar="FILE",
        help=f"the profile (default: {PROFILE} in the project's root)",
    )
    parser.add_argument(
        "--mirror",
        type=Path,
        metavar="DIR",
        help="the folder of the real data files to slice (default: the workspace's mirror)",
    )
    args = parser.parse_args(argv)
    try:
        root = verify.find_root(Path.cwd())
        profile = (args.params or root / PROFILE).resolve()
        mirror = args.mirror.resolve() if args.mirror else None
        return demo(root, profile, mirror, args.keep)
    except BadInput as e:
        print(f"demo: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
