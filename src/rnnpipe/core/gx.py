"""Run expectation suites with Great Expectations 1.x and turn the results into a report.

A check validates one or more tables (pandas DataFrames), each against its own suite, through
a file Data Context in `<report folder>/gx/` (git-ignored, under reports/). The context is
file-backed, not ephemeral, so that the four checks share one Data Docs site in
`<report folder>/docs/` whose index lists the latest result of every check. Everything is
created with add_or_update, so a rerun never fails with "already exists". Each check, passed or
failed, also logs the report and the site to an MLflow run of its own (see _log_to_mlflow).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from rnnpipe.core.atomic import write_json
from rnnpipe.core.commands import arg
from rnnpipe.core.digest import file_sha256
from rnnpipe.core.errors import PipelineError

# before great_expectations is first imported: no usage statistics (offline machines), and no
# INFO chatter from its import and set-up in the stage's log
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
logging.getLogger("great_expectations").setLevel(logging.WARNING)
log = logging.getLogger(__name__)

REPORT = arg("report", type=Path, help="JSON report (a metric); Data Docs go to docs/ beside it")
STAMP = arg(
    "stamp",
    type=Path,
    help="written when the data passes: what passed (the next stages' dependency)",
)

SITE = "rnnpipe"
MAX_EXAMPLES = 5  # offending rows kept per expectation in the report and the summary


@dataclass(frozen=True)
class Table:
    """One DataFrame and the suite it must pass; `index_columns` identify a row in messages."""

    name: str
    frame: pd.DataFrame
    suite: object  # great_expectations.ExpectationSuite
    index_columns: tuple[str, ...] = ()


def _context(root: Path, docs: Path):
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    root.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", project_root_dir=root)
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    site = {
        "class_name": "SiteBuilder",
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        "store_backend": {
            "class_name": "TupleFilesystemStoreBackend",
            "base_directory": str(docs.resolve()),
        },
    }
    if SITE in context.get_site_names():
        context.update_data_docs_site(SITE, site)
    else:
        context.add_data_docs_site(SITE, site)
    return context


def _forget_old_results(context, suite_names: set[str]) -> None:
    """Drop earlier results of these suites, so the docs index shows each check once."""
    store = context.validation_results_store
    for key in store.list_keys():
        if key.expectation_suite_identifier.name in suite_names:
            store.remove_key(key)


def validate(
    check: str,
    tables: list[Table],
    report_path: Path,
    *,
    files: list[Path] = (),
    data_docs: bool = True,
) -> dict:
    """Validate every table; write the JSON report and the Data Docs, log both to an MLflow run
    of the check's own (see _log_to_mlflow; `files`: the data checked, named there by their
    SHA-256); return the report.

    Raises PipelineError (after writing and logging both) when an expectation fails.
    data_docs=False skips the HTML (about 2 s a check; the unit tests skip it).
    """
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction

    t0 = time.perf_counter()
    report_path = Path(report_path)
    docs = report_path.parent / "docs"
    context = _context(report_path.parent, docs)  # the context lives in <folder>/gx/
    source = context.data_sources.add_or_update_pandas(check)  # fresh: drops old assets
    _forget_old_results(context, {t.suite.name for t in tables})

    results = []
    for table in tables:
        suite = context.suites.add_or_update(table.suite)
        batch = source.add_dataframe_asset(table.name).add_batch_definition_whole_dataframe("all")
        definition = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=suite.name, data=batch, suite=suite)
        )
        checkpoint = context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=suite.name,
                validation_definitions=[definition],
                actions=[UpdateDataDocsAction(name="data_docs", site_names=[SITE])]
                if data_docs
                else [],
                result_format={
                    "result_format": "SUMMARY",
                    "partial_unexpected_count": MAX_EXAMPLES,
                    "unexpected_index_column_names": list(table.index_columns),
                },
            )
        )
        outcome = checkpoint.run(batch_parameters={"dataframe": table.frame})
        for validation in outcome.run_results.values():
            results += [_describe(table.name, r) for r in validation.results]

    failed = [r for r in results if not r["success"]]
    report = {
        "check": check,
        "success": not failed,
        "evaluated": len(results),
        "passed": len(results) - len(failed),
        "failed": len(failed),
        "seconds": round(time.perf_counter() - t0, 2),
        "docs": str(docs / "index.html"),
        "expectations": results,
    }
    write_json(report_path, report)
    log.info(
        "%s: %d expectations, %d failed, %.1f s",
        check,
        len(results),
        len(failed),
        report["seconds"],
    )
    _log_to_mlflow(check, report, report_path, docs if data_docs else None, files)
    if failed:
        raise PipelineError(summary(report))
    return report


# keyword arguments that are the expectation's bounds (what the summary shows)
_BOUND_KEYS = (
    "min_value",
    "max_value",
    "value",
    "value_set",
    "regex",
    "column_list",
    "column_set",
    "strict_min",
    "strict_max",
)


def _describe(table: str, r) -> dict:
    """One expectation's result as plain JSON: what was expected, what was observed."""
    config = r.expectation_config
    kwargs = config.kwargs
    result = r.result or {}
    out = {
        "table": table,
        "expectation": config.type,
        "description": config.description,
        "column": kwargs.get("column") or kwargs.get("column_A"),
        "where": _where(kwargs.get("row_condition")),
        "bounds": {k: _plain(kwargs[k]) for k in _BOUND_KEYS if kwargs.get(k) is not None},
        "success": bool(r.success),
    }
    if "observed_value" in result:
        out["observed"] = _plain(result["observed_value"])
    if "unexpected_count" in result:
        out["rows"] = result.get("element_count")
        out["unexpected"] = result["unexpected_count"]
        examples = result.get("partial_unexpected_index_list") or [
            {"value": v} for v in result.get("partial_unexpected_list") or []
        ]
        # rows come as {column: value} with index columns, else as bare DataFrame indices
        examples = [
            row if isinstance(row, dict) else {"index": row} for row in examples[:MAX_EXAMPLES]
        ]
        out["examples"] = [{k: _short(v) for k, v in row.items()} for row in examples]
    if r.exception_info and r.exception_info.get("raised_exception"):
        out["error"] = r.exception_info.get("exception_message")
    return out


def _where(condition) -> str | None:
    """A row condition (as GX serialises it) in words: `split == 'test'`."""
    if not condition:
        return None
    if isinstance(condition, dict) and "conditions" in condition:
        joiner = f" {condition.get('type', 'and')} "
        return joiner.join(f"({_where(c)})" for c in condition["conditions"])
    if isinstance(condition, dict) and "column" in condition:
        op = condition["operator"].lower()
        return f"{condition['column']['name']} {op} {condition.get('parameter')!r}"
    return str(condition)


def _plain(value):
    """numpy scalars and tuples -> JSON types."""
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    return value


def _short(value, limit: int = 60):
    value = _plain(value)
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + "..."
    return value


def summary(report: dict) -> str:
    """A few readable lines: which expectation failed, on what, observed against the bound."""
    failed = [r for r in report["expectations"] if not r["success"]]
    lines = [
        f"data quality check {report['check']} failed: {len(failed)} of "
        f"{report['evaluated']} expectations (details: {report['docs']})"
    ]
    for r in failed:
        what = r["expectation"]
        if r["column"]:
            what += f" on column {r['column']!r}"
        if r["where"]:
            what += f" where {r['where']}"
        lines.append(f"- {r['description'] or what}")
        lines.append(f"    {what} [table {r['table']}]")
        bounds = ", ".join(f"{k}={v!r}" for k, v in r["bounds"].items())
        if "unexpected" in r:
            lines.append(f"    {r['unexpected']} of {r['rows']} rows break it; expected {bounds}")
            for row in r["examples"][:3]:
                lines.append("      e.g. " + ", ".join(f"{k}={v!r}" for k, v in row.items()))
        elif "observed" in r:
            lines.append(f"    observed {r['observed']!r}; expected {bounds}")
        if r.get("error"):
            lines.append(f"    error: {r['error']}")
    return "\n".join(lines)


def _log_to_mlflow(
    check: str, report: dict, report_path: Path, docs: Path | None, files: list[Path]
) -> None:
    """A run of the check's own in its project's experiment (the check's first word: imdb_raw
    -> rnnpipe-imdb, stage imdb_check_raw): the report and the Data Docs under quality/, the
    counts, tags naming the data by SHA-256 (data_sha256.<file name>, as in the stamp). The run
    of data that fails ends FAILED."""
    import mlflow

    from rnnpipe.core import tracking

    project, _, kind = check.partition("_")
    stage = f"{project}_check_{kind}"
    experiment_id = tracking.setup(project)
    tracking.close_stale_runs(experiment_id, stage)
    tags = {
        "stage": stage,
        "quality.check": check,
        "quality.passed": str(report["success"]).lower(),
        **{f"data_sha256.{name}": d for name, d in digests(files).items()},
        **tracking.source_tags(),
    }
    with mlflow.start_run(run_name=f"{check} check", tags=tags):
        mlflow.log_metrics({k: report[k] for k in ("passed", "failed", "evaluated")})
        mlflow.log_artifact(str(report_path), artifact_path="quality")
        if docs and docs.is_dir():
            with tempfile.TemporaryDirectory() as tmp:
                # not GX's tutorial GIFs (3.3 of the site's 4 MB), which no page shows
                shutil.copytree(docs, f"{tmp}/docs", ignore=shutil.ignore_patterns("*.gif"))
                mlflow.log_artifacts(f"{tmp}/docs", artifact_path="quality/docs")
        if not report["success"]:
            mlflow.end_run("FAILED")


def digests(files: list[Path]) -> dict[str, str]:
    """file name -> SHA-256 of its bytes."""
    return {Path(path).name: file_sha256(path) for path in files}


def write_stamp(stamp: Path, check: str, files: list[Path]) -> None:
    """Record that `files` passed `check`: their names and SHA-256, nothing else (no times), so
    the stamp changes exactly when the data does and a rerun on the same data reruns nothing
    downstream."""
    write_json(stamp, {"check": check, "passed": digests(files)})
