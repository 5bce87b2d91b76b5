"""Model files whose bytes depend only on the model: the same weights give the same file.

Keras 3 `model.save` writes three things into a .keras zip that change from one save to the next
although the model does not (measured with Keras 3.15):

- the zip entry of model.weights.h5 carries the time of saving (zipfile's `writestr` stamps
  the clock; metadata.json and config.json already get the fixed 1980-01-01);
- metadata.json holds "date_saved";
- config.json holds "shared_object_id": Python's `id()` of objects the config shares (the
  dtype policy), a memory address that differs in every process.

`write_model` saves, then copies the zip with these fixed. The HDF5 bytes need nothing: h5py
creates datasets without timestamps (track_times=False) and Keras's groups hold none either
(ctime and mtime read 0), and two saves gave the same model.weights.h5. np.savez and
np.savez_compressed (numpy 2: every entry dated 1980-01-01), np.save and pandas/pyarrow
Parquet are already byte-identical for identical content, so they need no help here.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from rnnpipe.core.atomic import atomic_path

FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can hold
FIXED_DATE_SAVED = "1980-01-01@00:00:00"  # in Keras's format, "%Y-%m-%d@%H:%M:%S"
FILE_MODE = 0o600 << 16  # what zipfile gives an entry written from bytes (Unix mode, high bits)


def save_model(model, path: str | Path) -> None:
    """Save a Keras model to `path` (.keras) atomically, with deterministic bytes."""
    with atomic_path(path) as tmp:
        write_model(model, tmp)


def write_model(model, path: str | Path) -> None:
    """Save a Keras model to `path` (.keras) with deterministic bytes; not atomic by itself
    (give it the temporary path of an `atomic_path`)."""
    path = Path(path)
    # Keras writes the zip in one go; it is rewritten from a second temporary file beside it
    fd, raw = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".raw.keras", dir=path.parent)
    os.close(fd)
    try:
        model.save(raw)
        normalize_keras_zip(raw, path)
    finally:
        os.unlink(raw)


def normalize_keras_zip(src: str | Path, dst: str | Path) -> None:
    """Copy the .keras zip `src` to `dst`: the same entries, order and compression, each dated
    FIXED_TIME with FILE_MODE, and metadata.json and config.json without time or memory ids."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in sorted(zin.infolist(), key=_entry_order):
            out = zipfile.ZipInfo(info.filename, date_time=FIXED_TIME)
            out.compress_type = info.compress_type
            out.create_system = 3  # Unix, as zipfile writes it everywhere but on Windows
            out.external_attr = FILE_MODE | (info.external_attr & 0x10)  # keep the folder flag
            if info.filename == "metadata.json":
                zout.writestr(out, _fixed_metadata(zin.read(info)))
            elif info.filename == "config.json":
                zout.writestr(out, _renumber_shared_ids(zin.read(info)))
            else:
                # stream: model.weights.h5 can be large; the known size decides zip64 up front
                out.file_size = info.file_size
                with zin.open(info) as r, zout.open(out, "w") as w:
                    shutil.copyfileobj(r, w, 1 << 20)


def _entry_order(info: zipfile.ZipInfo) -> tuple[bool, str]:
    # Keras's own order for its fixed entries (the sort is stable); assets/ files come in
    # os.listdir order, which depends on the file system, so they go last, by name
    is_asset = info.filename.startswith("assets/")
    return is_asset, info.filename if is_asset else ""


def _fixed_metadata(data: bytes) -> bytes:
    meta = json.loads(data)
    if "date_saved" in meta:  # kept (Keras's file editor reads it), only with a fixed value
        meta["date_saved"] = FIXED_DATE_SAVED
    return json.dumps(meta).encode()  # json.dumps's defaults, as Keras writes it


def _renumber_shared_ids(data: bytes) -> bytes:
    """Replace each "shared_object_id" (an `id()`) by 1, 2, ... in order of first appearance.
    Loading only matches equal ids to each other, so a one-to-one renumbering keeps the
    sharing."""
    config = json.loads(data)
    numbers: dict[int, int] = {}

    def walk(node) -> None:
        if isinstance(node, dict):
            if "shared_object_id" in node:
                old = node["shared_object_id"]
                node["shared_object_id"] = numbers.setdefault(old, len(numbers) + 1)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return json.dumps(config).encode()
