"""Registration and promotion in the MLflow model registry: the `champion` alias goes to the
model with the best validation metric.

The register stage of each project registers the model that evaluate logged into the train run
(once: a rerun reuses that version), under `<project>.promote.model_name`. `promote` compares
the version's validation metric (`<project>.promote.metric`, a key of the `valid` section of
metrics.json) with the current champion's: the first version becomes champion, a better one
takes the alias, anything else stays a `candidate`. Test metrics never decide. The comparison
is recorded as tags on the version (promotion, challenger_metric, champion_metric,
compared_with_version), and the metric itself as the tag valid_<metric>, so the next comparison
does not need the old run.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from rnnpipe.core.atomic import write_json
from rnnpipe.core.commands import arg
from rnnpipe.core.errors import PipelineError

log = logging.getLogger(__name__)

CHAMPION = "champion"
SPLIT = "valid"  # the metrics.json section that decides

ARGS = (arg("model", type=Path, help="models/<project>/model.keras (finds its train run)"),
        arg("metrics", type=Path, help="reports/<project>/metrics.json"),
        arg("out", type=Path, help="reports/<project>/promotion.json: the decision"))
HELP = ("register the model evaluate logged, under <project>.promote.model_name; give it the "
        "`champion` alias if its validation metric beats the champion's, else tag it a "
        "candidate")


def register_stage(project: str, p, model: Path, metrics_file: Path, out: Path) -> dict:
    """The register stage: `p` is the project's promote params."""
    import mlflow

    from rnnpipe.core import tracking

    try:
        metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise PipelineError(f"{metrics_file} is not valid JSON: {e}") from None
    value = metric_value(metrics, f"{SPLIT}.{p.metric}")
    run_id = tracking.run_of_model(project, model)
    logged = mlflow.search_logged_models(filter_string=f"source_run_id = '{run_id}'",
                                         output_format="list")
    if not logged:
        raise PipelineError(f"run {run_id} (which trained {model}) has no logged model: run "
                            f"the evaluate stage first (dvc repro {project}_evaluate)")
    newest = max(logged, key=lambda m: m.creation_timestamp)
    client = MlflowClient()
    # a rerun of register on the same evaluated model reuses its version
    version = version_of(client, p.model_name, run_id, newest.model_id)
    if version is None:
        version = mlflow.register_model(newest.model_uri, p.model_name)
    decision = promote(client, p.model_name, version, p.metric, value, p.greater_is_better)
    write_json(out, decision)
    return decision


def metric_value(metrics: dict, name: str) -> float:
    """`name` from a metrics.json (a dotted name reaches into sections, e.g. test.accuracy)."""
    value = metrics
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            raise PipelineError(f"metric {name!r} not in metrics.json (it has: "
                                f"{', '.join(map(str, metrics))}); see params <project>.promote")
        value = value[part]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PipelineError(f"metric {name!r} in metrics.json is not a number: {value!r}")
    return float(value)


def version_of(client: MlflowClient, name: str, run_id: str, model_id: str
               ) -> ModelVersion | None:
    """The version of model `name` registered from logged model `model_id`, if any."""
    # the SQL registry store leaves ModelVersion.model_id empty; the source names the model
    versions = [v for v in client.search_model_versions(f"run_id='{run_id}'")
                if v.name == name and model_id in (v.model_id, v.source.removeprefix("models:/"))]
    return max(versions, key=lambda v: int(v.version)) if versions else None


def champion(client: MlflowClient, name: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException as e:
        if e.error_code == "RESOURCE_DOES_NOT_EXIST" or "alias" in str(e).lower():
            return None
        raise


def _recorded_metric(client: MlflowClient, v: ModelVersion, metric: str) -> float | None:
    """The champion's metric: its version tag, else the valid_<metric> of its run."""
    tag = v.tags.get(f"{SPLIT}_{metric}")
    if tag is not None:
        return float(tag)
    if v.run_id:
        return client.get_run(v.run_id).data.metrics.get(f"{SPLIT}_{metric}")
    return None


def is_better(challenger: float, champion_value: float, greater_is_better: bool) -> bool:
    """Strictly better: a tie keeps the champion."""
    return challenger > champion_value if greater_is_better else challenger < champion_value


def promote(client: MlflowClient, name: str, v: ModelVersion, metric: str, value: float,
            greater_is_better: bool) -> dict:
    """Give version `v` the champion alias if its validation `metric` (`value`) beats the
    champion's; returns the decision."""
    client.set_model_version_tag(name, v.version, f"{SPLIT}_{metric}", str(value))
    current = champion(client, name)
    decision = {"model_name": name, "version": int(v.version), "run_id": v.run_id,
                "metric": f"{SPLIT}.{metric}", "greater_is_better": greater_is_better,
                "challenger_metric": value, "champion_metric": None,
                "compared_with_version": None}
    if current is None:
        promoted, reason = True, "first model: no champion yet"
    elif current.version == v.version:
        promoted, reason = True, "already the champion"
    else:
        old = _recorded_metric(client, current, metric)
        decision["champion_metric"] = old
        decision["compared_with_version"] = int(current.version)
        if old is None:
            promoted, reason = True, f"champion {current.version} has no {SPLIT}_{metric}"
        else:
            promoted = is_better(value, old, greater_is_better)
            word = "beats" if promoted else "does not beat"
            reason = (f"{SPLIT} {metric} {value:.6g} {word} champion {current.version}'s "
                      f"{old:.6g}")
    decision["decision"] = CHAMPION if promoted else "candidate"
    decision["reason"] = reason
    tags = {"promotion": decision["decision"], "challenger_metric": str(value),
            "champion_metric": str(decision["champion_metric"]),
            "compared_with_version": str(decision["compared_with_version"])}
    for k, t in tags.items():
        client.set_model_version_tag(name, v.version, k, t)
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, v.version)
        if current is not None and current.version != v.version:
            client.set_model_version_tag(name, current.version, "promotion", "retired")
    decision["champion_version"] = int(v.version) if promoted else int(current.version)
    log.info("%s version %s: %s (%s)", name, v.version, decision["decision"], reason)
    return decision
