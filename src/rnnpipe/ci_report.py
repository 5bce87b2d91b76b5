"""The PR report: what a change does to the metrics, params and plots, against a base revision,
as Markdown for a CI job summary or a PR comment (.github/workflows/ci.yml, job `report`).

    python -m rnnpipe.ci_report --base REV --out summary.md [--plots-dir DIR]

It reads what git holds (reports/ and params.yaml are committed) through `dvc metrics diff`,
`dvc params diff` and `dvc plots diff`. The plots that changed are drawn to PNG with matplotlib
in DIR: DVC renders Vega-Lite, which needs a browser or vl-convert; a CI runner has neither.
No stage imports this module.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

MARKER = "<!-- rnnpipe-pr-report -->"  # the PR comment that CI updates instead of adding one
DATA = "<DVC_METRIC_DATA>"


def dvc(*args: str, cwd: Path) -> str:
    exe = Path(sys.executable).with_name("dvc")
    proc = subprocess.run(
        [str(exe) if exe.exists() else "dvc", *args], cwd=cwd, capture_output=True, text=True
    )
    if proc.returncode:
        raise SystemExit(f"dvc {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc.stdout


def _fields(spec, axis: str):
    """The fields the Vega-Lite spec puts on `axis`, outermost first."""
    if isinstance(spec, dict):
        enc = spec.get("encoding")
        if isinstance(enc, dict) and isinstance(enc.get(axis), dict) and "field" in enc[axis]:
            yield enc[axis]["field"]
        for value in spec.values():
            yield from _fields(value, axis)
    elif isinstance(spec, list):
        for value in spec:
            yield from _fields(value, axis)


def changed_plots(base: str, cwd: Path) -> dict[str, dict]:
    """plot id -> {x, y, title, x_label, y_label, rows: rev -> datapoints}, for each plot
    whose data differ between `base` and the workspace."""
    out = json.loads(dvc("plots", "diff", base, "--json", "--split", cwd=cwd) or "{}")
    plots = {}
    for name, renderers in out.get("data", {}).items():
        for r in renderers:
            anchors = r.get("anchor_definitions", {})
            rows: dict[str, list] = {rev: [] for rev in r.get("revisions", [])}
            for point in anchors.get(DATA, []):
                rows.setdefault(point["rev"], []).append(
                    {k: v for k, v in point.items() if k != "rev"}
                )
            if len({json.dumps(v, sort_keys=True) for v in rows.values()}) < 2:
                continue  # the same data in both revisions
            spec = r.get("content", {})
            plots[name] = {
                "x": next(_fields(spec, "x"), None),
                "matrix": '"rect"' in json.dumps(spec),  # the confusion template
                "y": next(_fields(spec, "y"), None),
                "rows": rows,
                "title": anchors.get("<DVC_METRIC_TITLE>", name),
                "x_label": anchors.get("<DVC_METRIC_X_LABEL>", ""),
                "y_label": anchors.get("<DVC_METRIC_Y_LABEL>", ""),
            }
    return plots


def _number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def draw(plot: dict, path: Path) -> None:
    """A line per revision and y field (the workspace solid, the base dashed); a confusion
    matrix as a table of counts per revision."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, y, rows = plot["x"], plot["y"], plot["rows"]
    points = [p for ps in rows.values() for p in ps]
    if not plot["matrix"]:
        fig, ax = plt.subplots(figsize=(6, 4))
        colors: dict[str, str] = {}
        for style, (rev, ps) in zip(("-", "--", ":"), rows.items(), strict=False):
            series: dict[str, list] = {}
            for p in ps:
                # several y columns: DVC gives each point one, named by `field`
                key, value = (
                    (p["field"], p["dvc_inferred_y_value"])
                    if "dvc_inferred_y_value" in p
                    else (y, p.get(y))
                )
                series.setdefault(key, []).append((_number(p.get(x)), _number(value)))
            for key, xy in series.items():
                xy = sorted(v for v in xy if None not in v)
                color = colors.setdefault(key, f"C{len(colors)}")  # a field keeps its color
                ax.plot(
                    *zip(*xy, strict=True),
                    style,
                    marker=".",
                    color=color,
                    label=f"{key} ({rev})" if len(series) > 1 else rev,
                )
        ax.set_xlabel(plot["x_label"] or x)
        ax.set_ylabel(plot["y_label"] or y or "")
        ax.legend(fontsize="small")
    else:
        labels = sorted({str(p[k]) for p in points for k in (x, y)})
        fig, axes = plt.subplots(1, len(rows), figsize=(4 * len(rows), 4), squeeze=False)
        for ax, (rev, ps) in zip(axes[0], rows.items(), strict=True):
            counts = [
                [sum(str(p[x]) == a and str(p[y]) == b for p in ps) for a in labels] for b in labels
            ]
            ax.imshow(counts, cmap="Blues")
            for i, line in enumerate(counts):
                for j, n in enumerate(line):
                    ax.text(j, i, str(n), ha="center", va="center")
            ax.set_xticks(range(len(labels)), labels)
            ax.set_yticks(range(len(labels)), labels)
            ax.set_xlabel(plot["x_label"] or x)
            ax.set_ylabel(plot["y_label"] or y)
            ax.set_title(rev)
    fig.suptitle(plot["title"])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def png_name(plot_id: str) -> str:
    return re.sub(r"[^\w.-]+", "_", plot_id).strip("_") + ".png"


def _table(md: str) -> str:
    """DVC's Markdown table, or "" when it has no row (nothing changed)."""
    md = md.strip()
    return md if len(md.splitlines()) > 2 else ""


def report(base: str, cwd: Path, plots_dir: Path | None = None) -> str:
    metrics = _table(dvc("metrics", "diff", base, "--md", cwd=cwd))
    params = _table(dvc("params", "diff", base, "--md", cwd=cwd))
    plots = changed_plots(base, cwd)
    lines = [
        MARKER,
        f"## Pipeline report: this change against `{base}`",
        "",
        "### Metrics",
        "",
        metrics or "No metric changed.",
        "",
        "### Params",
        "",
        params or "No param changed.",
        "",
        "### Plots",
        "",
    ]
    if not plots:
        lines.append("No plot changed.")
    for name, plot in plots.items():
        where = ""
        if plots_dir is not None:
            plots_dir.mkdir(parents=True, exist_ok=True)
            draw(plot, plots_dir / png_name(name))
            where = f": `{png_name(name)}`"
        lines.append(f"- {plot['title']} (`{name}`){where}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rnnpipe.ci_report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--base", required=True, help="the git revision to compare with")
    parser.add_argument("--out", type=Path, required=True, help="the Markdown file to write")
    parser.add_argument("--plots-dir", type=Path, help="draw the changed plots here (PNG)")
    parser.add_argument("--repo", type=Path, default=Path("."), help="the project (default: .)")
    args = parser.parse_args(argv)
    args.out.write_text(report(args.base, args.repo, args.plots_dir), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
