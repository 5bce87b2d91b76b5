"""Fetch a data file from a mirror folder first, then from its official URL."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path

import requests
from tqdm import tqdm

from rnnpipe.core.atomic import atomic_path, write_json
from rnnpipe.core.commands import PROJECTS, arg, command
from rnnpipe.core.errors import PipelineError
from rnnpipe.core.params import DownloadParams, Params
from rnnpipe.core.paths import project_root

log = logging.getLogger(__name__)

DEFAULT_MIRROR = "../shared/data"  # relative to the project's root
MIRROR_ENV = "RNNPIPE_DATA_MIRROR"
CHUNK = 1 << 20


def mirror_folder(params: DownloadParams) -> Path:
    """$RNNPIPE_DATA_MIRROR, else the `mirror` param, else ../shared/data; a relative folder
    is taken from the project's root (also in a DVC experiment's temporary copy)."""
    return project_root() / (os.environ.get(MIRROR_ENV) or params.mirror or DEFAULT_MIRROR)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _copy_from_mirror(src: Path, tmp: Path) -> None:
    if not src.is_file():
        raise FileNotFoundError(f"no file {src}")
    shutil.copyfile(src, tmp)


def _get_from_url(url: str, tmp: Path, timeout_s: float) -> None:
    with requests.get(url, stream=True, timeout=timeout_s) as r:
        r.raise_for_status()
        total = int(r.headers.get("content-length", 0)) or None
        with (
            open(tmp, "wb") as f,
            tqdm(total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1]) as bar,
        ):
            for chunk in r.iter_content(CHUNK):
                f.write(chunk)
                bar.update(len(chunk))


def download(params: DownloadParams, out: Path, record: Path) -> dict:
    """Land the file at `out` (atomically) and its provenance at `record`; return the record.

    Each source is tried in turn; a checksum not in `params.sha256` (when that list is given)
    counts as that source failing. When all fail, the error lists every source and why.
    """
    sources = [("mirror", mirror_folder(params) / params.filename), ("url", params.url)]
    failures = []
    for kind, source in sources:
        try:
            with atomic_path(out) as tmp:
                if kind == "mirror":
                    _copy_from_mirror(Path(source), tmp)
                else:
                    _get_from_url(str(source), tmp, params.timeout_s)
                digest = sha256_of(tmp)
                if params.sha256 and digest not in params.sha256:
                    raise ValueError(
                        f"checksum mismatch: sha256 {digest} is not one of the accepted "
                        f"{params.sha256} (edit `download.sha256` in params.yaml if the file "
                        "changed on purpose)"
                    )
        except (OSError, ValueError, requests.RequestException) as e:
            failures.append(f"  {kind} {source}: {e}")
            log.warning("download from %s failed: %s", source, e)
            continue
        # where it came from as a kind ("mirror" or "url"), not the mirror's path: the record
        # is a pipeline output, the same on every machine for the same file (the log has it)
        info = {
            "source": kind,
            "url": params.url,
            "bytes": out.stat().st_size,
            "sha256": digest,
            "filename": params.filename,
        }
        write_json(record, info)
        log.info("downloaded %s (%d bytes) from %s", out, info["bytes"], source)
        return info
    raise PipelineError(f"could not get {params.filename} from any source:\n" + "\n".join(failures))


@command(
    PROJECTS,
    "download",
    arg("out", type=Path, help="where the data file lands"),
    arg("record", type=Path, help="JSON record of source, size and SHA-256"),
    help="fetch the data set from the mirror folder, else its official URL",
)
def download_stage(params: Params, out: Path, record: Path, *, project: str) -> None:
    download(getattr(params, project).download, out, record)
