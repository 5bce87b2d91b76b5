"""IMDb ingest: the archive, checked member by member, into one table with a valid split."""

import io
import tarfile

import pandas as pd
import pytest

from rnnpipe import cli
from rnnpipe.data import imdb
from rnnpipe.errors import PipelineError
from tests import tinydata
from tests.test_params import write_params

N = 20  # reviews per folder in tinydata.imdb_members


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return tinydata.write_imdb_archive(tmp_path_factory.mktemp("imdb") / "aclImdb_v1.tar.gz")


def test_table_columns_dtypes_labels_ratings(archive):
    df = imdb.read_reviews(archive)
    assert list(df.columns) == ["split", "id", "rating", "label", "text"]
    assert df.dtypes.astype(str).to_dict() == {
        "split": "string", "id": "int64", "rating": "int8", "label": "int8", "text": "string"}
    assert df.groupby(["split", "label"]).size().to_dict() == {
        ("test", 0): N, ("test", 1): N, ("train", 0): N, ("train", 1): N}
    # the file name's rating, and the label its folder says
    assert df.loc[df.label == 1, "rating"].between(7, 10).all()
    assert df.loc[df.label == 0, "rating"].between(1, 4).all()
    members = tinydata.imdb_members()
    row = df.iloc[0]
    folder = "pos" if row.label == 1 else "neg"
    name = f"aclImdb/{row.split}/{folder}/{row.id}_{row.rating}.txt"
    assert members[name].decode() == row.text
    assert df["id"].is_unique


def test_include_unsup_adds_unlabelled_rows(archive):
    df = imdb.read_reviews(archive, include_unsup=True)
    unsup = df[df.split == "unsup"]
    assert len(unsup) == 10
    assert (unsup.label == -1).all() and (unsup.rating == 0).all()
    assert len(df) == 4 * N + 10


def test_valid_split_is_stratified_and_seeded(archive):
    df = imdb.read_reviews(archive, include_unsup=True)
    a = imdb.split_valid(df, 0.25, seed=1)
    assert a.groupby(["split", "label"]).size().to_dict() == {
        ("train", 0): 15, ("train", 1): 15, ("valid", 0): 5, ("valid", 1): 5,
        ("test", 0): N, ("test", 1): N, ("unsup", -1): 10}
    assert list(a.split.unique()) == ["train", "valid", "test", "unsup"]
    assert a.dtypes.equals(df.dtypes)
    valid_ids = set(a.loc[a.split == "valid", "id"])
    assert valid_ids <= set(df.loc[df.split == "train", "id"])
    assert valid_ids == set(imdb.split_valid(df, 0.25, seed=1).query("split == 'valid'").id)
    assert valid_ids != set(imdb.split_valid(df, 0.25, seed=2).query("split == 'valid'").id)


def test_cli_ingest_writes_parquet(tmp_path, archive):
    params = write_params(tmp_path / "params.yaml")
    out = tmp_path / "interim" / "reviews.parquet"
    assert cli.main(["--params", str(params), "imdb", "ingest", str(archive), str(out)]) == 0
    df = pd.read_parquet(out)
    assert df.split.value_counts().to_dict() == {"test": 40, "train": 30, "valid": 10}
    assert str(df.rating.dtype) == "int8" and str(df.label.dtype) == "int8"


# ---------------------------------------------------------------- bad inputs


def _tar_with(path, members: dict[str, bytes], extra: list[tarfile.TarInfo]):
    """A valid tiny archive plus `extra` members (links, odd paths) appended."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name in sorted(members):
            info = tarfile.TarInfo(name)
            info.size = len(members[name])
            tar.addfile(info, io.BytesIO(members[name]))
        for info in extra:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return path


def _file(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = 1
    return info


def _link(name: str, target: str, kind=tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def _device(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.CHRTYPE
    return info


def _truncated(path):
    data = tinydata.write_imdb_archive(path).read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _cut_end(path):
    """Only the last bytes missing: every folder is there, but the archive is incomplete."""
    data = tinydata.write_imdb_archive(path).read_bytes()
    path.write_bytes(data[:-6])


def _garbage(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not a gzip file at all" * 10)


def _corrupt_gzip(path):
    data = bytearray(tinydata.write_imdb_archive(path).read_bytes())
    for i in range(200, 260):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _members_without(prefix: str) -> dict[str, bytes]:
    return {k: v for k, v in tinydata.imdb_members().items() if not k.startswith(prefix)}


def _members_plus(name: str, data: bytes) -> dict[str, bytes]:
    return {**tinydata.imdb_members(), name: data}


BAD_ARCHIVES = {
    "truncated": (_truncated, "truncated or corrupt archive"),
    "cut at the end": (_cut_end, "truncated or corrupt archive"),
    "not gzip": (_garbage, "truncated or corrupt archive"),
    "corrupt gzip": (_corrupt_gzip, "truncated or corrupt archive"),
    "dot-dot": (lambda p: _tar_with(p, tinydata.imdb_members(),
                                    [_file("aclImdb/../../evil.txt")]),
                "'aclImdb/../../evil.txt': '..' in its path"),
    "absolute": (lambda p: _tar_with(p, tinydata.imdb_members(), [_file("/etc/evil.txt")]),
                 "'/etc/evil.txt': absolute path"),
    "symlink": (lambda p: _tar_with(p, tinydata.imdb_members(),
                                    [_link("aclImdb/train/pos/99_9.txt", "/etc/passwd")]),
                "'aclImdb/train/pos/99_9.txt': links are not allowed"),
    "hardlink": (lambda p: _tar_with(p, tinydata.imdb_members(),
                                     [_link("aclImdb/x", "aclImdb/README", tarfile.LNKTYPE)]),
                 "'aclImdb/x': links are not allowed"),
    "device": (lambda p: _tar_with(p, tinydata.imdb_members(), [_device("aclImdb/dev")]),
               "'aclImdb/dev': not a regular file or folder"),
    "missing test/neg": (lambda p: tinydata.write_imdb_archive(
        p, _members_without("aclImdb/test/neg/")), "missing or empty folder(s): aclImdb/test/neg"),
    "unparsable name": (lambda p: tinydata.write_imdb_archive(
        p, _members_plus("aclImdb/train/pos/review_seven.txt", b"fine")),
        "aclImdb/train/pos/review_seven.txt: file name is not <id>_<rating>.txt"),
    "non-UTF-8": (lambda p: tinydata.write_imdb_archive(
        p, _members_plus("aclImdb/test/neg/999_2.txt", b"caf\xe9 au lait")),
        "aclImdb/test/neg/999_2.txt: not valid UTF-8 (byte 3: b'\\xe9')"),
}


@pytest.mark.parametrize("case", BAD_ARCHIVES)
def test_bad_archive_clear_error_exit_1_no_output(tmp_path, capsys, case):
    make, message = BAD_ARCHIVES[case]
    archive = tmp_path / "raw" / "aclImdb_v1.tar.gz"
    make(archive)
    out = tmp_path / "interim" / "reviews.parquet"
    params = write_params(tmp_path / "params.yaml")
    rc = cli.main(["--params", str(params), "imdb", "ingest", str(archive), str(out)])
    assert rc == 1
    err = capsys.readouterr().err
    assert err.startswith("rnnpipe imdb ingest: error: ")
    assert message in err
    assert "Traceback" not in err
    assert not out.exists()
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_missing_unsup_only_matters_when_asked(tmp_path):
    archive = tinydata.write_imdb_archive(tmp_path / "a.tar.gz",
                                          _members_without("aclImdb/train/unsup/"))
    assert len(imdb.read_reviews(archive)) == 4 * N
    with pytest.raises(PipelineError, match="aclImdb/train/unsup"):
        imdb.read_reviews(archive, include_unsup=True)


def test_missing_archive(tmp_path):
    with pytest.raises(PipelineError, match="nope.tar.gz: no such file"):
        imdb.read_reviews(tmp_path / "nope.tar.gz")
