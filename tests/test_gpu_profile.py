"""params_gpu.yaml, the GPU runner's profile: valid, cuDNN cells only, and docs/gpu.md's table
lists exactly its differences from params.yaml."""

import re

import yaml

from rnnpipe.core.params import load_params
from tests.conftest import ROOT

PROFILE = ROOT / "params_gpu.yaml"


def flat(tree, prefix: str = "") -> dict:
    if isinstance(tree, dict):
        return {
            k: v for key, value in tree.items() for k, v in flat(value, f"{prefix}{key}.").items()
        }
    return {prefix.rstrip("."): tree}


def value(text: str):
    return yaml.safe_load(text.strip().strip("`"))


def test_the_profile_passes_the_schema():
    params = load_params(PROFILE)  # every project's section
    for project in (params.imdb, params.charlm):
        cells = {project.train.model.cell, *project.tune.space.get("cell", [])}
        assert cells <= {"LSTM", "GRU"}, "a cell without cuDNN's fused kernel"


def test_the_docs_table_lists_every_difference():
    default, gpu = (flat(yaml.safe_load(p.read_text())) for p in (ROOT / "params.yaml", PROFILE))
    assert default.keys() == gpu.keys()
    diff = {k: (default[k], gpu[k]) for k in default if default[k] != gpu[k]}
    rows = re.findall(
        r"^\| `([\w.]+)` \| ([^|]+) \| ([^|]+) \|$",
        (ROOT / "docs" / "gpu.md").read_text(),
        re.MULTILINE,
    )
    assert {key: (value(a), value(b)) for key, a, b in rows} == diff
