"""register: a new version of `charlm.promote.model_name` from the train run's logged model; the
`champion` alias moves to it only when its validation loss beats the champion's on the same
validation text.

The basis of the validation metric (rnnpipe.core.registry): the metric and the SHA-256 of the
encoded validation text. A champion on another basis is scored again on the challenger's
validation text as the evaluate stage scores a model (its functions: load_model, load_ids,
sampler.stream_loss, sampler.metrics), the ids carried over into the champion's own vocabulary
first. RNNPIPE_PROMOTE=challenger|keep decides when the champion cannot be scored (see
rnnpipe.core.registry).
"""

from __future__ import annotations

from pathlib import Path

from rnnpipe.core import registry
from rnnpipe.core.commands import command
from rnnpipe.core.errors import PipelineError
from rnnpipe.core.params import Params


def scorer(valid: Path, metric: str) -> registry.Scorer:
    """Scores a champion's artifacts (model, vocab: rnnpipe.charlm.pyfunc) on the encoded text
    `valid`, whose vocabulary is the vocab.json beside it."""

    def score(artifacts: dict[str, Path]) -> tuple[float, dict]:
        from rnnpipe.charlm import sampler
        from rnnpipe.charlm.evaluate import load_model
        from rnnpipe.charlm.feed import load_ids
        from rnnpipe.core.vocab import Vocabulary

        missing = {"model", "vocab"} - set(artifacts)
        if missing:
            raise PipelineError(f"the champion's model has no {sorted(missing)} artifact(s)")
        model = load_model(artifacts["model"])
        ids, details = registry.translate_ids(
            load_ids(valid),
            Vocabulary.load(valid.parent / "vocab.json"),
            Vocabulary.load(artifacts["vocab"]),
        )
        # as the evaluate stage: one stream from a zero state, state carried
        m = sampler.metrics(sampler.stream_loss(model, ids)) | {"chars": len(ids)}
        return registry.metric_value(m, metric), details

    return score


@command("charlm", "register", *registry.ARGS, help=registry.HELP)
def register(params: Params, model: Path, metrics: Path, valid: Path, out: Path) -> None:
    p = params.charlm.promote
    registry.register_stage(
        "charlm",
        p,
        model,
        metrics,
        out,
        registry.data_basis(valid, p.metric),
        scorer(valid, p.metric),
    )
