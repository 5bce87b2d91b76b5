"""Registration and promotion in the MLflow model registry: the `champion` alias goes to the
model with the best validation metric, compared on the same validation data.

The register stage of each project registers the model that evaluate logged into the train run
(once: a rerun reuses that version), under `<project>.promote.model_name`, and tags the version
`pyfunc_sha256`, the digest of its files: those of models/<project>/pyfunc, the folder evaluate
saved and logged (rnnpipe.core.packaging). `promote` compares the version's validation metric
(`<project>.promote.metric`, a key of the `valid` section of metrics.json) with the current
champion's: the first version becomes champion, a better one takes the alias, anything else
stays a `candidate`. Test metrics never decide. The comparison is recorded as tags on the
version (promotion, challenger_metric, champion_metric, compared_with_version, compared_on),
and the metric itself as the tag valid_<metric>, so the next comparison does not need the old
run.

What a metric was computed on is its *basis*, a dict the project's register module builds
(`data_basis` and the project's own entries): the metric's name, the SHA-256 of the encoded
validation split evaluate scored (data/processed/<project>/valid.npz) and, for IMDb, the
threshold policy. Each version records its basis as `basis.<key>` tags. The champion's recorded
metric counts only when its basis equals the challenger's; otherwise (other data, another
policy, or a version registered before bases were recorded) the project's scorer scores the
champion's registered model on the challenger's validation data, with the challenger's policy,
and the decision is made on those two numbers (`compared_on: challenger-data`).

If the champion cannot be scored (its artifacts are gone, its model no longer loads), the stage
refuses (PipelineError) rather than compare numbers from different data. To decide anyway, set
RNNPIPE_PROMOTE for that run:

    RNNPIPE_PROMOTE=challenger dvc repro <project>_register   # the challenger takes the alias
    RNNPIPE_PROMOTE=keep dvc repro <project>_register         # the champion stays

It is read only when the champion cannot be scored, and the decision records it (`forced`).
An MLflow error while reading the champion alias, other than "no such alias", fails the stage:
a transient server error is not "no champion yet".
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from rnnpipe.core.atomic import write_json
from rnnpipe.core.commands import arg
from rnnpipe.core.errors import PipelineError

log = logging.getLogger(__name__)

CHAMPION = "champion"
SPLIT = "valid"  # the metrics.json section that decides
BASIS_TAG = "basis."  # prefix of the version tags recording what the metric was computed on
FORCE_ENV = "RNNPIPE_PROMOTE"
FORCE_CHOICES = ("challenger", "keep")
# the MLflow errors that mean "this registered model has no such alias" (measured on MLflow 3,
# sqlite store and REST server alike): the model itself missing -> RESOURCE_DOES_NOT_EXIST
# ("Registered Model with name=... not found"), the alias missing -> INVALID_PARAMETER_VALUE
# ("Registered model alias champion not found.")
NO_MODEL = "RESOURCE_DOES_NOT_EXIST"
NO_ALIAS = "INVALID_PARAMETER_VALUE"

# scores the champion's registered model on the challenger's validation data: gets the local
# paths of the champion's pyfunc artifacts (name -> path, as the pyfunc logged them), returns
# its validation metric and how it was computed (a JSON-able dict for promotion.json)
Scorer = Callable[[dict[str, Path]], tuple[float, dict]]

ARGS = (
    arg("model", type=Path, help="models/<project>/model.keras (finds its train run)"),
    arg("metrics", type=Path, help="reports/<project>/metrics.json"),
    arg(
        "valid",
        type=Path,
        help="data/processed/<project>/valid.npz: the encoded validation split evaluate "
        "scored (read with the vocab.json beside it)",
    ),
    arg("out", type=Path, help="reports/<project>/promotion.json: the decision"),
)
HELP = (
    "register the model evaluate logged, under <project>.promote.model_name; give it the "
    "`champion` alias if its validation metric beats the champion's on the same validation "
    "data, else tag it a candidate"
)


def register_stage(
    project: str,
    p,
    model: Path,
    metrics_file: Path,
    out: Path,
    basis: dict,
    scorer: Scorer | None = None,
) -> dict:
    """The register stage: `p` is the project's promote params, `basis` what the metric was
    computed on (see the module docstring), `scorer` scores the champion on the challenger's
    validation data when the bases differ."""
    import mlflow

    from rnnpipe.core import tracking

    try:
        metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise PipelineError(f"{metrics_file} is not valid JSON: {e}") from None
    value = metric_value(metrics, f"{SPLIT}.{p.metric}")
    run_id = tracking.run_of_model(project, model)
    # READY only: a logged model whose upload failed (FAILED) or never ended (PENDING) has no
    # complete files to register
    logged = [
        m
        for m in mlflow.search_logged_models(
            filter_string=f"source_run_id = '{run_id}'", output_format="list"
        )
        if str(m.status).endswith("READY")
    ]
    if not logged:
        raise PipelineError(
            f"run {run_id} (which trained {model}) has no logged model: run "
            f"the evaluate stage first (dvc repro {project}_evaluate)"
        )
    newest = max(logged, key=lambda m: m.creation_timestamp)
    client = MlflowClient()
    # a rerun of register on the same evaluated model reuses its version
    version = version_of(client, p.model_name, run_id, newest.model_id)
    if version is None:
        version = mlflow.register_model(newest.model_uri, p.model_name)
    copy_digest(client, newest, version)
    decision = promote(
        client, p.model_name, version, p.metric, value, p.greater_is_better, basis, scorer
    )
    write_json(out, decision)
    return decision


def copy_digest(client: MlflowClient, logged, v: ModelVersion) -> None:
    """Tag version `v` with the digest of its files that evaluate recorded on the logged model
    (pyfunc_sha256: the models/<project>/pyfunc folder it was saved from); a model logged
    before evaluate recorded it has none."""
    from rnnpipe.core.packaging import TAG

    digest = logged.tags.get(TAG)
    if digest is not None:
        client.set_model_version_tag(v.name, v.version, TAG, digest)


def data_basis(valid: Path, metric: str) -> dict:
    """The project-independent part of a basis: the metric's name and the SHA-256 of the
    validation data file it was computed on."""
    from rnnpipe.core.tracking import file_sha256

    try:
        digest = file_sha256(valid)
    except OSError as e:
        raise PipelineError(f"cannot read the validation data {valid}: {e}") from None
    return {"metric": f"{SPLIT}.{metric}", "valid_data_sha256": digest}


def metric_value(metrics: dict, name: str) -> float:
    """`name` from a metrics.json (a dotted name reaches into sections, e.g. test.accuracy)."""
    value = metrics
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            raise PipelineError(
                f"metric {name!r} not in metrics.json (it has: "
                f"{', '.join(map(str, metrics))}); see params <project>.promote"
            )
        value = value[part]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PipelineError(f"metric {name!r} in metrics.json is not a number: {value!r}")
    return float(value)


def version_of(client: MlflowClient, name: str, run_id: str, model_id: str) -> ModelVersion | None:
    """The version of model `name` registered from logged model `model_id`, if any."""
    # the SQL registry store leaves ModelVersion.model_id empty; the source names the model
    versions = [
        v
        for v in client.search_model_versions(f"run_id='{run_id}'")
        if v.name == name and model_id in (v.model_id, v.source.removeprefix("models:/"))
    ]
    return max(versions, key=lambda v: int(v.version)) if versions else None


def no_such_alias(e: MlflowException) -> bool:
    """Whether `e`, raised by get_model_version_by_alias, says there is no such alias (or no
    such registered model) rather than that the store failed."""
    if e.error_code == NO_MODEL:
        return True
    text = e.message.lower()
    return e.error_code == NO_ALIAS and "alias" in text and "not found" in text


def champion(client: MlflowClient, name: str) -> ModelVersion | None:
    """The version holding the champion alias; None when there is none. Any other MLflow
    error (a server error, a timeout) is an error: taken as "no champion", it would promote
    the challenger unconditionally."""
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException as e:
        if no_such_alias(e):
            return None
        raise PipelineError(
            f"cannot read the {CHAMPION!r} alias of model {name!r} from the MLflow store "
            f"({e.error_code}: {e}); not taken as 'no champion yet'. Retry when the store "
            f"answers"
        ) from e


def recorded_basis(v: ModelVersion) -> dict:
    """The basis version `v` recorded (its basis.* tags); empty for a version registered
    before bases were recorded."""
    return {k.removeprefix(BASIS_TAG): t for k, t in v.tags.items() if k.startswith(BASIS_TAG)}


def _recorded_metric(v: ModelVersion, metric: str) -> float | None:
    """The champion's metric as its version tag recorded it."""
    tag = v.tags.get(f"{SPLIT}_{metric}")
    return None if tag is None else float(tag)


def is_better(challenger: float, champion_value: float, greater_is_better: bool) -> bool:
    """Strictly better: a tie keeps the champion."""
    return challenger > champion_value if greater_is_better else challenger < champion_value


def forced_choice() -> str | None:
    """RNNPIPE_PROMOTE: how to decide when the champion cannot be scored, or None."""
    choice = os.environ.get(FORCE_ENV, "").strip()
    if choice and choice not in FORCE_CHOICES:
        raise PipelineError(
            f"{FORCE_ENV}={choice!r}: expected one of {', '.join(FORCE_CHOICES)} (or unset)"
        )
    return choice or None


def champion_artifacts(name: str, version: str, dst: Path) -> dict[str, Path]:
    """Download registered version `version` of model `name` into `dst`; the local paths of
    its pyfunc artifacts (name -> path)."""
    import mlflow
    from mlflow.models import Model

    local = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{version}", dst_path=str(dst)
        )
    )
    flavor = Model.load(local).flavors.get("python_function", {})
    return {k: local / a["path"] for k, a in (flavor.get("artifacts") or {}).items()}


def rescore(name: str, v: ModelVersion, scorer: Scorer | None) -> tuple[float, dict]:
    """Version `v`'s metric on the challenger's validation data (scorer's)."""
    if scorer is None:
        raise PipelineError("no scorer given")
    with tempfile.TemporaryDirectory(prefix="rnnpipe-champion-") as tmp:
        value, details = scorer(champion_artifacts(name, v.version, Path(tmp)))
    return float(value), details


def _basis_text(basis: dict) -> str:
    return "; ".join(f"{k} {val}" for k, val in sorted(basis.items())) or "none recorded"


def translate_ids(
    ids: np.ndarray, source, target, real: np.ndarray | None = None
) -> tuple[np.ndarray, dict]:
    """`ids` encoded with Vocabulary `source` as ids of Vocabulary `target` (what the champion
    was trained with): each token keeps its token, a token `target` lacks becomes its OOV id,
    padding stays padding. `real` masks the positions that hold tokens (None: all). Returns
    the ids and a summary (tokens `target` lacks, of all real ones)."""
    if source.kind != target.kind:
        raise PipelineError(
            f"the champion's vocabulary is a {target.kind} vocabulary, the "
            f"validation data's a {source.kind} one"
        )
    if source.tokens == target.tokens:
        return ids, {"vocabulary": "same"}
    index = target.index
    table = np.array([index.get(t, target.oov_id) for t in source.tokens], dtype=ids.dtype)
    table[source.oov_id] = target.oov_id
    if source.pad_id is not None and target.pad_id is not None:
        table[source.pad_id] = target.pad_id
    out = table[ids]
    real = np.ones(ids.shape, bool) if real is None else real
    lost = real & (out == target.oov_id) & (ids != source.oov_id)
    return out, {
        "vocabulary": "translated",
        "tokens": int(real.sum()),
        "tokens_unknown_to_champion": int(lost.sum()),
    }


def promote(
    client: MlflowClient,
    name: str,
    v: ModelVersion,
    metric: str,
    value: float,
    greater_is_better: bool,
    basis: dict,
    scorer: Scorer | None = None,
) -> dict:
    """Give version `v` the champion alias if its validation `metric` (`value`, computed on
    `basis`) beats the champion's on the same basis; returns the decision. A champion whose
    recorded basis differs is scored by `scorer` on the challenger's data; if it cannot be,
    RNNPIPE_PROMOTE decides, else PipelineError."""
    force = forced_choice()
    basis = {k: str(b) for k, b in basis.items()}
    client.set_model_version_tag(name, v.version, f"{SPLIT}_{metric}", str(value))
    for k, b in basis.items():
        client.set_model_version_tag(name, v.version, BASIS_TAG + k, b)
    current = champion(client, name)
    decision = {
        "model_name": name,
        "version": int(v.version),
        "run_id": v.run_id,
        "metric": f"{SPLIT}.{metric}",
        "greater_is_better": greater_is_better,
        "challenger_metric": value,
        "champion_metric": None,
        "compared_with_version": None,
        "challenger_basis": basis,
        "champion_basis": None,
        "compared_on": None,
        "champion_scoring": None,
        "forced": None,
    }
    if current is None:
        promoted, reason = True, "first model: no champion yet"
    elif current.version == v.version:
        promoted, reason = True, "already the champion"
    else:
        old_basis = recorded_basis(current)
        old = _recorded_metric(current, metric)
        decision["champion_basis"] = old_basis or None
        decision["compared_with_version"] = int(current.version)
        if old is not None and old_basis == basis:
            decision["champion_metric"] = old
            decision["compared_on"] = "same-basis"
            promoted = is_better(value, old, greater_is_better)
            word = "beats" if promoted else "does not beat"
            reason = f"{SPLIT} {metric} {value:.6g} {word} champion {current.version}'s {old:.6g}"
        else:
            # the champion's number is from other data or another policy: score it again,
            # on the challenger's data
            ours = basis.get("valid_data_sha256", "?")[:12]
            theirs = old_basis.get("valid_data_sha256", "")[:12] or "none recorded"
            try:
                old, details = rescore(name, current, scorer)
            except Exception as e:  # noqa: BLE001  (whatever failed, the numbers are missing)
                if force is None:
                    raise PipelineError(
                        f"cannot compare version {v.version} of {name!r} with champion "
                        f"{current.version}: the champion's {SPLIT} {metric} was computed on "
                        f"another basis ({_basis_text(old_basis)}) than the challenger's "
                        f"({_basis_text(basis)}), and scoring the champion on the "
                        f"challenger's validation data failed: {e}. To decide anyway, rerun "
                        f"with {FORCE_ENV}=challenger (the challenger takes the {CHAMPION} "
                        f"alias) or {FORCE_ENV}=keep (the champion stays, the challenger is a "
                        f"candidate)"
                    ) from e
                log.warning(
                    "champion %s could not be scored on the challenger's data (%s); %s=%s decides",
                    current.version,
                    e,
                    FORCE_ENV,
                    force,
                )
                decision["compared_on"] = "forced"
                decision["forced"] = force
                promoted = force == "challenger"
                reason = (
                    f"forced by {FORCE_ENV}={force}: champion {current.version} could not "
                    f"be scored on the challenger's validation data (sha256 {ours}; its "
                    f"own record: {theirs})"
                )
            else:
                decision["champion_metric"] = old
                decision["compared_on"] = "challenger-data"
                decision["champion_scoring"] = details
                promoted = is_better(value, old, greater_is_better)
                word = "beats" if promoted else "does not beat"
                reason = (
                    f"{SPLIT} {metric} {value:.6g} {word} champion {current.version}'s "
                    f"{old:.6g}, both on the challenger's validation data (sha256 "
                    f"{ours}); the champion's record is on another basis (validation "
                    f"data sha256 {theirs})"
                )
    decision["decision"] = CHAMPION if promoted else "candidate"
    decision["reason"] = reason
    tags = {
        "promotion": decision["decision"],
        "challenger_metric": str(value),
        "champion_metric": str(decision["champion_metric"]),
        "compared_with_version": str(decision["compared_with_version"]),
        "compared_on": str(decision["compared_on"]),
    }
    for k, t in tags.items():
        client.set_model_version_tag(name, v.version, k, t)
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, v.version)
        if current is not None and current.version != v.version:
            client.set_model_version_tag(name, current.version, "promotion", "retired")
    decision["champion_version"] = int(v.version) if promoted else int(current.version)
    log.info("%s version %s: %s (%s)", name, v.version, decision["decision"], reason)
    return decision
