"""tune: a Keras Tuner search over the char LM's builder with the train stage's feed, on the
beginning of the training text, scored on the beginning of the validation text."""

from __future__ import annotations

from pathlib import Path

from rnnpipe.charlm.feed import load_ids, make_feed
from rnnpipe.core import progress
from rnnpipe.core.commands import command
from rnnpipe.core.errors import PipelineError
from rnnpipe.core.params import Params
from rnnpipe.core.search import ARGS, HELP, fixed_keys
from rnnpipe.core.vocab import Vocabulary


@command("charlm", "tune", *ARGS, help=HELP)
def tune(
    params: Params, processed: Path, vocab: Path, out: Path, report: Path, trials: Path
) -> None:
    from rnnpipe.core import search  # imports Keras Tuner and TensorFlow: only when tuning
    from rnnpipe.core.training import batches, set_seed

    t, feed_kind, seed = params.charlm.tune, params.charlm.train.feed, params.seed
    vocab_size = len(Vocabulary.load(vocab))
    # contiguous beginnings of the parts: text stays text
    train_ids = load_ids(processed / "train.npz")
    train_ids = train_ids[: round(len(train_ids) * t.train_fraction)]
    valid_ids = load_ids(processed / "valid.npz")
    valid_ids = valid_ids[: round(len(valid_ids) * t.valid_fraction)]

    def feed(hp: dict):  # the windows depend on the trial's seq_length
        return make_feed(train_ids, valid_ids, feed_kind, t.batch_size, hp["seq_length"])

    base = fixed_keys(params.charlm.train.model, t.space)
    sizes = []  # batches per epoch, for each window length searched
    for seq_length in t.space.get("seq_length", [base.get("seq_length")]):
        try:
            sizes.append(batches(feed({"seq_length": seq_length}).fit_kwargs["x"], t.batch_size))
        except PipelineError:  # the text is too short: those trials fail and say so
            pass
    n = "-".join(map(str, sorted({min(sizes), max(sizes)}))) if sizes else "no"
    progress.announce(
        "charlm tune",
        f"up to {t.max_trials} trials ({t.tuner}) of up to "
        f"{t.epochs} epochs of {n} batches (batch {t.batch_size}, "
        f"{len(train_ids):,} characters, {feed_kind} feed)",
        report,
        count="trials",
    )

    def data(hp: dict) -> dict:
        f = feed(hp)
        return {**f.fit_kwargs, "callbacks": list(f.callbacks)}

    task = search.Task(
        project="charlm",
        build=lambda hp: feed(hp).build(hp, vocab_size),
        base=base,
        data=data,
        fingerprint=search.fingerprint(
            processed / "train.npz", processed / "valid.npz", vocab, extra={"feed": feed_kind}
        ),
    )
    set_seed(seed)
    search.run_stage(task, t, seed, out, report, trials)
