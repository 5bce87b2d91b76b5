"""Atomic writes: the target is the old file or the whole new one, never half of one."""

import json
import os
import stat

import pytest

from rnnpipe.core.atomic import atomic_path, write_bytes, write_json, write_text


def test_writes_and_creates_parent(tmp_path):
    target = tmp_path / "a" / "b" / "x.txt"
    write_text(target, "héllo\n")
    assert target.read_bytes() == "héllo\n".encode()
    assert os.listdir(target.parent) == ["x.txt"]


def test_usual_file_mode_not_0600(tmp_path):
    target = tmp_path / "x.bin"
    write_bytes(target, b"1")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


def test_json_is_sorted_and_unicode(tmp_path):
    target = tmp_path / "r.json"
    write_json(target, {"b": 1, "a": "é"})
    text = target.read_text(encoding="utf-8")
    assert text.index('"a"') < text.index('"b"') and "é" in text
    assert json.loads(text) == {"a": "é", "b": 1}


def test_temp_keeps_extension_beside_target(tmp_path):
    target = tmp_path / "table.parquet"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".parquet")
        assert not target.exists()
        tmp.write_bytes(b"x")
    assert target.read_bytes() == b"x"


def test_error_keeps_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "x.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half of the ne")
        raise RuntimeError("killed half-way")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["x.txt"]


def test_error_without_old_file_leaves_nothing(tmp_path):
    target = tmp_path / "x.txt"
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


def test_directory_replaced_whole(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_path(target, is_dir=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert os.listdir(target) == ["new.txt"]
    with pytest.raises(ValueError), atomic_path(target, is_dir=True) as tmp:
        (tmp / "half.txt").write_text("half")
        raise ValueError
    assert os.listdir(target) == ["new.txt"]
    assert os.listdir(tmp_path) == ["model"]
