"""evaluate: held-out loss, bits per character and perplexity on the validation and test text
(each read as one stream, state carried), samples at several temperatures; the pyfunc saved to
models/charlm/pyfunc (a DVC output, deterministic bytes); all logged, the pyfunc as those same
files, into the train run, with the learning curves (figures/learning_curves.png) and each
sample as samples/temperature_<t>.txt."""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path

from rnnpipe.charlm.feed import load_ids
from rnnpipe.charlm.model import bits
from rnnpipe.core import figures
from rnnpipe.core.atomic import write_json, write_text
from rnnpipe.core.commands import arg, command
from rnnpipe.core.errors import PipelineError
from rnnpipe.core.params import Params
from rnnpipe.core.vocab import Vocabulary

log = logging.getLogger(__name__)


def load_model(path: Path):
    import keras

    try:
        return keras.models.load_model(path)
    except (OSError, ValueError) as e:
        raise PipelineError(f"cannot load model {path}: {e}") from None


@command(
    "charlm",
    "evaluate",
    arg("model_dir", type=Path, help="models/charlm"),
    arg("processed", type=Path, help="folder of train/valid/test.npz"),
    arg("reports", type=Path, help="reports/charlm: metrics.json, curves.csv, samples.md"),
    arg(
        "pyfunc_dir",
        type=Path,
        help="models/charlm/pyfunc: the folder to save the served model (MLflow pyfunc) in",
    ),
    help="held-out loss, bits per character, perplexity, samples; save and log the pyfunc",
)
def evaluate(
    params: Params, model_dir: Path, processed: Path, reports: Path, pyfunc_dir: Path
) -> None:
    import mlflow

    from rnnpipe.charlm import pyfunc, sampler
    from rnnpipe.core import tracking

    p = params.charlm.evaluate
    model = load_model(model_dir / "model.keras")
    run_id = tracking.evaluation_run("charlm", model_dir / "model.keras")  # before writing anything
    v = Vocabulary.load(model_dir / "vocab.json")
    m = {}
    for part in ("valid", "test"):
        ids = load_ids(processed / f"{part}.npz")
        # one continuous stream from a zero state, state carried across the whole part
        m[part] = sampler.metrics(sampler.stream_loss(model, ids)) | {"chars": len(ids)}
    write_json(reports / "metrics.json", m)

    history = json.loads((model_dir / "history.json").read_text())["epochs"]
    buf = io.StringIO()
    cols = ["epoch", "loss", "val_loss", "bits_per_char", "val_bits_per_char"]
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    rows = [e | bits(e) for e in history]
    for row in rows:
        w.writerow({c: row[c] for c in cols})
    write_text(reports / "curves.csv", buf.getvalue())

    gen = sampler.Generator(model, v)
    parts = [
        f"# Samples from {p.prompt!r}\n",
        "Temperature divides the logits (temperature = 1 / the textbook's scale factor). "
        f"{p.sample_length} characters each, seed {params.seed}.\n",
    ]
    texts = {}
    for t in p.temperatures:
        text = texts[t] = gen.generate(p.prompt, p.sample_length, t, seed=params.seed)
        parts.append(f"## temperature {t:g}\n\n```text\n{text}\n```\n")
    samples = "\n".join(parts)
    write_text(reports / "samples.md", samples)

    with mlflow.start_run(run_id=run_id):
        for part, values in m.items():
            mlflow.log_metrics({f"{part}_{k}": float(x) for k, x in values.items()})
        mlflow.log_text(samples, "samples.md")
        for t, text in texts.items():
            mlflow.log_text(text, f"samples/temperature_{t:g}.txt")
        figures.log(
            {
                "learning_curves": figures.learning_curves(
                    rows, {"loss": "loss (nats/char)", "bits_per_char": "bits per char"}
                )
            }
        )
        mlflow.log_artifact(str(reports / "curves.csv"))
        pyfunc.log_pyfunc(model_dir / "model.keras", model_dir / "vocab.json", pyfunc_dir)
    log.info("valid loss %.4f, test loss %.4f nats/char", m["valid"]["loss"], m["test"]["loss"])
