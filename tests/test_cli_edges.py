"""The CLI's edges: a fast listing, bad input files, a builder's refusal, real command names."""

import ast
import json
import re
import subprocess
import sys

import numpy as np
import pytest

from rnnpipe import cli
from rnnpipe.core.commands import COMMANDS, PROJECTS
from rnnpipe.core.errors import ModelConfigError, PipelineError, UsageError
from tests.conftest import ROOT, TINY_PARAMS
from tests.tinydata import sentiment_params

HEAVY = ("tensorflow", "keras", "mlflow", "great_expectations", "pandas")


def test_the_listing_read_from_the_source_is_what_the_modules_register():
    cli.build_parser(["--help"], every=True)  # imports every command's module
    for project in PROJECTS:
        registered = {name: cmd.help for name, cmd in sorted(COMMANDS[project].items())}
        assert cli.listing(project) == registered
        assert len(registered) >= 13


LISTING = """
import json, sys
from rnnpipe.cli import main
codes = []
for argv in json.loads(sys.argv[1]):
    try:
        main(argv)
    except SystemExit as e:
        codes.append(e.code)
print(json.dumps({"codes": codes, "heavy": [m for m in sys.argv[2:] if m in sys.modules]}))
"""


def test_help_and_bad_names_import_no_heavy_library():
    argvs = [
        ["--help"],
        ["imdb", "--help"],
        ["charlm", "--help"],
        ["imdb", "evalute"],
        ["foo"],
        ["charlm", "genrate", "x"],
    ]
    proc = subprocess.run(
        [sys.executable, "-c", LISTING, json.dumps(argvs), *HEAVY],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    got = json.loads(proc.stdout.splitlines()[-1])
    assert got == {"codes": [0, 0, 0, 2, 2, 2], "heavy": []}
    # argparse's error names the valid commands
    assert "invalid choice: 'evalute'" in proc.stderr and "'evaluate'" in proc.stderr
    assert "invalid choice: 'foo'" in proc.stderr and "'charlm'" in proc.stderr
    assert "invalid choice: 'genrate'" in proc.stderr and "'generate'" in proc.stderr


def predict(capsys, monkeypatch, file) -> tuple[int, str]:
    # the file is checked before the model loads: MLflow is not even importable here
    monkeypatch.setitem(sys.modules, "mlflow", None)
    rc = cli.main(["--params", str(TINY_PARAMS), "imdb", "predict", "--file", str(file)])
    return rc, capsys.readouterr().err


@pytest.mark.parametrize(
    "content, message",
    [
        ("review,stars\ngood,5\n", "has no `text` column (columns: 'review', 'stars')"),
        ("", "has no `text` column (columns: none)"),
        (
            'text,stars\ngood,1\n,2\n\n"  ",3\nfine,4\n',  # a blank line is skipped
            "empty `text` on lines 3, 5 (the header is line 1)",
        ),
        ("text\ngood\nbad,extra\n", "more cells than columns on lines 3"),
        ('text\nok\n"a"b\n', "(line 3): ',' expected after '\"'"),
        ('text\nok\n"never closed\nmore\n', "(line 3): unexpected end of data"),
        (b"text\n\xff\n", "cannot read"),
    ],
)
def test_a_bad_csv_is_a_one_line_usage_error(tmp_path, capsys, monkeypatch, content, message):
    file = tmp_path / "reviews.csv"
    file.write_bytes(content if isinstance(content, bytes) else content.encode())
    rc, err = predict(capsys, monkeypatch, file)
    assert rc == 2
    assert len(err.splitlines()) == 1
    assert err.startswith("rnnpipe imdb predict: error: ") and message in err


def test_a_missing_or_empty_file_is_a_usage_error(tmp_path, capsys, monkeypatch):
    rc, err = predict(capsys, monkeypatch, tmp_path / "nothing.csv")
    assert rc == 2 and "cannot read" in err and "No such file" in err
    (tmp_path / "blank.txt").write_text("\n  \n")
    rc, err = predict(capsys, monkeypatch, tmp_path / "blank.txt")
    assert (
        rc == 2
        and err
        == "rnnpipe imdb predict: error: no reviews: give them as arguments or with --file\n"
    )


def test_reviews_read_from_a_file(tmp_path):
    from rnnpipe.imdb.predict import read_reviews

    csv = tmp_path / "r.csv"
    # a byte-order mark, a quoted review over two lines, "NA" is a review, not a missing one
    csv.write_text('\ufeffid,text\n1,"Good,\nreally"\n2,NA\n', encoding="utf-8")
    assert read_reviews(csv) == ["Good,\nreally", "NA"]
    txt = tmp_path / "r.txt"
    txt.write_text("first\n\nsecond\n   \n")
    assert read_reviews(txt) == ["first", "second"]  # blank lines skipped


def test_usage_and_model_errors_are_pipeline_errors():
    from rnnpipe.core.attention import check_shape

    assert issubclass(UsageError, PipelineError)
    # still a ValueError for the callers that catch that (Keras Tuner)
    with pytest.raises(ModelConfigError, match=r"heads \(3\) must divide") as e:
        check_shape(16, 3)
    assert isinstance(e.value, ValueError) and isinstance(e.value, PipelineError)


def test_a_model_builder_refusal_is_one_line(tmp_path, capsys, monkeypatch):
    from rnnpipe.core.vocab import Vocabulary

    monkeypatch.chdir(tmp_path)
    processed = tmp_path / "processed"
    processed.mkdir()
    for split in ("train", "valid"):
        np.savez(
            processed / f"{split}.npz",
            ids=np.ones((4, 30), "int32"),
            lengths=np.full(4, 30),
            labels=np.array([0, 1, 0, 1]),
        )
    Vocabulary("word", ("<pad>", "<oov>", "a", "b"), 0, 1).save(tmp_path / "vocab.json")
    # hparams.json as a user might edit it: the params schema never saw it
    hp = sentiment_params().model_dump() | {
        "cell": "Transformer",
        "units": 16,
        "heads": 3,
        "pretrained": False,
    }
    (tmp_path / "hparams.json").write_text(json.dumps(hp))
    rc = cli.main(
        [
            "--params",
            str(TINY_PARAMS),
            "imdb",
            "train",
            str(processed),
            str(tmp_path / "vocab.json"),
            str(tmp_path / "hparams.json"),
            str(tmp_path / "vectors.npy"),
            str(tmp_path / "out"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1
    assert err.splitlines() == [
        "rnnpipe imdb train: error: heads (3) must divide the model width, units (16)"
    ]


NAMED = re.compile(r"(?<![\w./$-])rnnpipe ([^\s`'\"]+)(?: ([^\s`'\",.;)]+))?")


def test_messages_name_real_commands():
    listed = {p: cli.listing(p) for p in PROJECTS}
    wrong, seen = [], 0
    for path in sorted((ROOT / "src" / "rnnpipe").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
                continue
            for first, second in NAMED.findall(node.value):
                seen += 1
                second = second.rstrip(":")
                if first.startswith("<") or first in ("--help", "--params", "-v"):
                    continue
                if first not in PROJECTS:
                    wrong.append(f"{path.name}: rnnpipe {first} {second}")
                elif second and not second.startswith("<") and second not in listed[first]:
                    wrong.append(f"{path.name}: rnnpipe {first} {second}")
    assert seen > 10  # the pattern finds the commands the docstrings name
    assert not wrong
