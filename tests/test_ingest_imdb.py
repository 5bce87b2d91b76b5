"""IMDb ingest: the archive, checked member by member, into one table with a valid split of
whole movies."""

import io
import random
import re
import tarfile

import pandas as pd
import pytest

from rnnpipe import cli
from rnnpipe.core.errors import PipelineError
from rnnpipe.imdb import ingest as imdb
from tests import tinydata
from tests.test_params import write_params

N = 20  # reviews per folder in tinydata.imdb_members


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return tinydata.write_imdb_archive(tmp_path_factory.mktemp("imdb") / "aclImdb_v1.tar.gz")


def test_table_columns_dtypes_labels_ratings(archive):
    df = imdb.read_reviews(archive)
    assert list(df.columns) == ["split", "id", "rating", "label", "movie", "text"]
    assert df.dtypes.astype(str).to_dict() == {
        "split": "string",
        "id": "int64",
        "rating": "int8",
        "label": "int8",
        "movie": "string",
        "text": "string",
    }
    assert df.groupby(["split", "label"]).size().to_dict() == {
        ("test", 0): N,
        ("test", 1): N,
        ("train", 0): N,
        ("train", 1): N,
    }
    # the file name's rating, and the label its folder says
    assert df.loc[df.label == 1, "rating"].between(7, 10).all()
    assert df.loc[df.label == 0, "rating"].between(1, 4).all()
    members = tinydata.imdb_members()
    for _, row in df.sample(10, random_state=0).iterrows():
        folder = "pos" if row.label == 1 else "neg"
        name = f"aclImdb/{row.split}/{folder}/{row.id}_{row.rating}.txt"
        assert members[name].decode() == row.text
        # line `id` of the folder's urls file is the review's IMDb page
        urls = members[f"aclImdb/{row.split}/urls_{folder}.txt"].decode().splitlines()
        assert urls[row.id] == f"http://www.imdb.com/title/{row.movie}/usercomments"
    # ids restart in every folder, as in the real archive: unique within a split and label
    assert not df["id"].is_unique
    assert not df.duplicated(["split", "label", "id"]).any()
    assert df["movie"].str.fullmatch(r"tt\d+").all()


def test_movie_ids_from_urls():
    urls = (
        "http://www.imdb.com/title/tt0453418/usercomments\n"
        "http://www.imdb.com/title/tt0064354/usercomments\n\nnot a url\n"
    )
    assert imdb.movie_ids(urls) == ["tt0453418", "tt0064354", "", ""]


def test_include_unsup_adds_unlabelled_rows(archive):
    df = imdb.read_reviews(archive, include_unsup=True)
    unsup = df[df.split == "unsup"]
    assert len(unsup) == 10
    assert (unsup.label == -1).all() and (unsup.rating == 0).all()
    assert (unsup.movie != "").all()
    assert len(df) == 4 * N + 10


def test_random_split_is_stratified_and_seeded(archive):
    df = imdb.read_reviews(archive, include_unsup=True)
    a = imdb.split_valid(df, 0.25, seed=1, group_by_movie=False)
    assert a.groupby(["split", "label"]).size().to_dict() == {
        ("train", 0): 15,
        ("train", 1): 15,
        ("valid", 0): 5,
        ("valid", 1): 5,
        ("test", 0): N,
        ("test", 1): N,
        ("unsup", -1): 10,
    }
    assert list(a.split.unique()) == ["train", "valid", "test", "unsup"]
    assert a.dtypes.equals(df.dtypes)
    assert valid_reviews(a) <= train_reviews(df)
    assert valid_reviews(a) == valid_reviews(imdb.split_valid(df, 0.25, 1, False))
    assert valid_reviews(a) != valid_reviews(imdb.split_valid(df, 0.25, 2, False))


def train_reviews(df) -> set[tuple[int, int]]:
    return set(df.loc[df.split == "train", ["label", "id"]].itertuples(index=False, name=None))


def valid_reviews(df) -> set[tuple[int, int]]:
    return set(df.loc[df.split == "valid", ["label", "id"]].itertuples(index=False, name=None))


def shared_movies_members(n: int = 60, movies: int = 24, seed: int = 0) -> dict[str, bytes]:
    """An archive whose training movies have both positive and negative reviews, one to a
    dozen of them (as IMDb's do): review i of train/pos and of train/neg is of a movie drawn
    at random from the same `movies` titles."""
    rng = random.Random(seed)
    members = tinydata.imdb_members(n_per_folder=n)
    for folder in ("pos", "neg"):
        urls = [tinydata.movie_url(1000 + rng.randrange(movies)) for _ in range(n)]
        members[f"aclImdb/train/urls_{folder}.txt"] = ("\n".join(urls) + "\n").encode()
    return members


@pytest.fixture(scope="module")
def shared_movies(tmp_path_factory) -> pd.DataFrame:
    path = tmp_path_factory.mktemp("imdb") / "shared.tar.gz"
    return imdb.read_reviews(
        tinydata.write_imdb_archive(path, shared_movies_members()), include_unsup=True
    )


def test_valid_takes_whole_movies(shared_movies):
    df = shared_movies
    train = df[df.split == "train"]
    assert (train.groupby("movie")["label"].nunique() == 2).sum() >= 10  # mixed movies
    # a random split would put reviews of one movie on both sides
    random_split = imdb.split_valid(df, 0.2, seed=0, group_by_movie=False)
    assert movies_of(random_split, "train") & movies_of(random_split, "valid")

    a = imdb.split_valid(df, 0.2, seed=0)
    assert not movies_of(a, "train") & movies_of(a, "valid")
    assert movies_of(a, "train") | movies_of(a, "valid") == set(train.movie)
    # every review of a movie went with it
    assert (a[a.split.isin(["train", "valid"])].groupby("movie")["split"].nunique() == 1).all()
    # test and unsup untouched
    pd.testing.assert_frame_equal(
        a[a.split.isin(["test", "unsup"])].reset_index(drop=True),
        df[df.split.isin(["test", "unsup"])].reset_index(drop=True),
    )
    assert a.dtypes.equals(df.dtypes)
    # about a fifth of the training reviews, about half of them positive
    valid = a[a.split == "valid"]
    assert 0.15 <= len(valid) / len(train) <= 0.25
    assert abs(valid.label.mean() - 0.5) <= 0.1
    assert abs(a.loc[a.split == "train", "label"].mean() - 0.5) <= 0.05


def test_grouped_split_is_seeded(shared_movies):
    df = shared_movies
    a = imdb.split_valid(df, 0.2, seed=1)
    assert movies_of(a, "valid") == movies_of(imdb.split_valid(df, 0.2, seed=1), "valid")
    assert movies_of(a, "valid") != movies_of(imdb.split_valid(df, 0.2, seed=2), "valid")
    pd.testing.assert_frame_equal(a, imdb.split_valid(df, 0.2, seed=1))


def movies_of(df, split: str) -> set[str]:
    return set(df.loc[df.split == split, "movie"])


def test_too_few_movies_for_the_fraction(tmp_path):
    members = tinydata.imdb_members(n_per_folder=4, reviews_per_movie=4)  # 1 movie a folder
    df = imdb.read_reviews(tinydata.write_imdb_archive(tmp_path / "a.tar.gz", members))
    with pytest.raises(
        PipelineError, match="2 movies in train: too few for a grouped validation split of 0.2"
    ):
        imdb.split_valid(df, 0.2, seed=0)


def test_cli_ingest_writes_parquet(tmp_path, archive):
    params = write_params(tmp_path / "params.yaml")
    out = tmp_path / "interim" / "reviews.parquet"
    assert cli.main(["--params", str(params), "imdb", "ingest", str(archive), str(out)]) == 0
    df = pd.read_parquet(out)
    # the tiny params ask for the unlabelled reviews too (imdb.ingest.include_unsup)
    assert df.split.value_counts().to_dict() == {"test": 40, "train": 30, "valid": 10, "unsup": 10}
    assert str(df.rating.dtype) == "int8" and str(df.label.dtype) == "int8"
    assert not movies_of(df, "train") & movies_of(df, "valid")


# ---------------------------------------------------------------- without urls_*.txt


@pytest.fixture(scope="module")
def archive_without_urls(tmp_path_factory):
    members = {
        k: v for k, v in tinydata.imdb_members().items() if not re.search(r"/urls_\w+\.txt$", k)
    }
    return tinydata.write_imdb_archive(tmp_path_factory.mktemp("imdb") / "a.tar.gz", members)


def test_archive_without_urls_names_them_and_the_way_out(archive_without_urls):
    with pytest.raises(PipelineError) as e:
        imdb.read_reviews(archive_without_urls)
    msg = str(e.value)
    assert re.search(r"no aclImdb/(train|test)/urls_(pos|neg)\.txt", msg)
    assert "imdb.ingest.group_by_movie: false" in msg


def test_archive_without_urls_reads_with_movies_false(archive_without_urls, archive):
    df = imdb.read_reviews(archive_without_urls, movies=False)
    assert (df.movie == "").all() and len(df) == 4 * N
    full = imdb.read_reviews(archive)
    pd.testing.assert_frame_equal(df.drop(columns="movie"), full.drop(columns="movie"))
    a = imdb.split_valid(df, 0.25, seed=1, group_by_movie=False)
    assert a.split.value_counts().to_dict() == {"test": 40, "train": 30, "valid": 10}


def test_cli_ingest_without_urls(tmp_path, archive_without_urls, capsys):
    out = tmp_path / "interim" / "reviews.parquet"
    args = ["imdb", "ingest", str(archive_without_urls), str(out)]
    assert cli.main(["--params", str(write_params(tmp_path / "p.yaml")), *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("rnnpipe imdb ingest: error: ") and "urls_" in err
    assert "group_by_movie" in err and not out.exists()

    def random_split(raw):
        raw["imdb"]["ingest"]["group_by_movie"] = False

    assert cli.main(["--params", str(write_params(tmp_path / "q.yaml", random_split)), *args]) == 0
    df = pd.read_parquet(out)
    assert df.split.value_counts().to_dict() == {"test": 40, "train": 30, "valid": 10, "unsup": 10}
    assert (df.movie == "").all()


def test_urls_file_shorter_than_its_folder(tmp_path):
    members = tinydata.imdb_members()
    lines = members["aclImdb/train/urls_pos.txt"].decode().splitlines()
    members["aclImdb/train/urls_pos.txt"] = ("\n".join(lines[:-1]) + "\n").encode()
    archive = tinydata.write_imdb_archive(tmp_path / "a.tar.gz", members)
    with pytest.raises(
        PipelineError,
        match=f"aclImdb/train/urls_pos.txt has no movie for review {N - 1} \\({N - 1} lines\\)",
    ):
        imdb.read_reviews(archive)
    assert len(imdb.read_reviews(archive, movies=False)) == 4 * N


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
    "dot-dot": (
        lambda p: _tar_with(p, tinydata.imdb_members(), [_file("aclImdb/../../evil.txt")]),
        "'aclImdb/../../evil.txt': '..' in its path",
    ),
    "absolute": (
        lambda p: _tar_with(p, tinydata.imdb_members(), [_file("/etc/evil.txt")]),
        "'/etc/evil.txt': absolute path",
    ),
    "symlink": (
        lambda p: _tar_with(
            p, tinydata.imdb_members(), [_link("aclImdb/train/pos/99_9.txt", "/etc/passwd")]
        ),
        "'aclImdb/train/pos/99_9.txt': links are not allowed",
    ),
    "hardlink": (
        lambda p: _tar_with(
            p, tinydata.imdb_members(), [_link("aclImdb/x", "aclImdb/README", tarfile.LNKTYPE)]
        ),
        "'aclImdb/x': links are not allowed",
    ),
    "device": (
        lambda p: _tar_with(p, tinydata.imdb_members(), [_device("aclImdb/dev")]),
        "'aclImdb/dev': not a regular file or folder",
    ),
    "missing test/neg": (
        lambda p: tinydata.write_imdb_archive(p, _members_without("aclImdb/test/neg/")),
        "missing or empty folder(s): aclImdb/test/neg",
    ),
    "unparsable name": (
        lambda p: tinydata.write_imdb_archive(
            p, _members_plus("aclImdb/train/pos/review_seven.txt", b"fine")
        ),
        "aclImdb/train/pos/review_seven.txt: file name is not <id>_<rating>.txt",
    ),
    "non-UTF-8": (
        lambda p: tinydata.write_imdb_archive(
            p, _members_plus("aclImdb/test/neg/999_2.txt", b"caf\xe9 au lait")
        ),
        "aclImdb/test/neg/999_2.txt: not valid UTF-8 (byte 3: b'\\xe9')",
    ),
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
    archive = tinydata.write_imdb_archive(
        tmp_path / "a.tar.gz", _members_without("aclImdb/train/unsup/")
    )
    assert len(imdb.read_reviews(archive)) == 4 * N
    with pytest.raises(PipelineError, match="aclImdb/train/unsup"):
        imdb.read_reviews(archive, include_unsup=True)


def test_missing_archive(tmp_path):
    with pytest.raises(PipelineError, match="nope.tar.gz: no such file"):
        imdb.read_reviews(tmp_path / "nope.tar.gz")
