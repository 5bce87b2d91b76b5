"""Where the project lives, also when DVC runs a stage in an experiment's temporary copy."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The project's root: DVC sets DVC_ROOT for every stage it runs (the parent repo's root
    for `dvc exp run --temp` and `--queue`, which run in a copy under .dvc/tmp/exps); run by
    hand, the current folder."""
    return Path(os.environ.get("DVC_ROOT") or ".").resolve()
