"""Promotion in the MLflow model registry: the `champion` alias goes to the best model.

The evaluate stage registers a new version of the model from its run. `promote` compares that
version's test metric with the current champion's: the first version becomes champion, a better
one takes the alias, anything else stays a `candidate`. The comparison is recorded as tags on
the version (promotion, challenger_metric, champion_metric, compared_with_version), and the
metric itself as the tag test_<metric>, so the next comparison does not need the old run.
"""

from __future__ import annotations

import logging

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from rnnpipe.errors import PipelineError

log = logging.getLogger(__name__)

CHAMPION = "champion"


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


def version_from_run(client: MlflowClient, name: str, run_id: str) -> ModelVersion:
    """The newest version of model `name` registered from run `run_id`."""
    versions = [v for v in client.search_model_versions(f"run_id='{run_id}'") if v.name == name]
    if not versions:
        raise PipelineError(f"no version of registered model {name!r} comes from run {run_id}; "
                            "the evaluate stage registers it (rerun it)")
    return max(versions, key=lambda v: int(v.version))


def champion(client: MlflowClient, name: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException as e:
        if e.error_code == "RESOURCE_DOES_NOT_EXIST" or "alias" in str(e).lower():
            return None
        raise


def _recorded_metric(client: MlflowClient, v: ModelVersion, metric: str) -> float | None:
    """The champion's metric: its version tag, else the test_<metric> of its run."""
    tag = v.tags.get(f"test_{metric}")
    if tag is not None:
        return float(tag)
    if v.run_id:
        return client.get_run(v.run_id).data.metrics.get(f"test_{metric}")
    return None


def is_better(challenger: float, champion_value: float, greater_is_better: bool) -> bool:
    """Strictly better: a tie keeps the champion."""
    return challenger > champion_value if greater_is_better else challenger < champion_value


def promote(client: MlflowClient, name: str, run_id: str, metric: str, value: float,
            greater_is_better: bool) -> dict:
    """Give the version from `run_id` the champion alias if it beats the champion; the decision."""
    v = version_from_run(client, name, run_id)
    client.set_model_version_tag(name, v.version, f"test_{metric}", str(value))
    current = champion(client, name)
    decision = {"model_name": name, "version": int(v.version), "run_id": run_id,
                "metric": metric, "greater_is_better": greater_is_better,
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
            promoted, reason = True, f"champion {current.version} has no test_{metric}"
        else:
            promoted = is_better(value, old, greater_is_better)
            word = "beats" if promoted else "does not beat"
            reason = f"{metric} {value:.6g} {word} champion {current.version}'s {old:.6g}"
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
