"""How a char LM trained on the novel reads English it never saw (issue 26, goal 2): nats per
character on the novel's test part and on other text, for each model folder given (model.keras
and vocab.json, as models/charlm holds them; `dvc get` or the DVC cache gives older ones).

The other text is IMDb reviews (the test split of data/interim/imdb/reviews.parquet: modern,
informal, about films; none of it in the novel) and any --text files. Characters outside the
model's vocabulary (accents, emoji) are dropped first, and the share dropped is printed: the
model never saw them, so they would measure the vocabulary, not the model. Each text is read as
one stream from a zero state, as the evaluate stage reads the novel's test part. Run:
    python benchmarks/charlm_out_of_domain.py models/charlm /tmp/other/charlm [--chars 100000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from rnnpipe.charlm.chars import encode  # noqa: E402
from rnnpipe.charlm.evaluate import load_model  # noqa: E402
from rnnpipe.charlm.feed import load_ids  # noqa: E402
from rnnpipe.charlm.sampler import stream_loss  # noqa: E402
from rnnpipe.core.errors import PipelineError  # noqa: E402
from rnnpipe.core.vocab import Vocabulary  # noqa: E402


def reviews_text(path: Path, chars: int) -> str:
    """The first test reviews, in file order, one paragraph each, up to about `chars`."""
    reviews = pd.read_parquet(path, columns=["split", "text"])
    out, n = [], 0
    for text in reviews.loc[reviews["split"] == "test", "text"]:
        out.append(text.replace("<br />", "\n"))
        n += len(out[-1]) + 2
        if n > chars * 1.1:  # a little over: some characters are dropped below
            break
    return "\n\n".join(out)


def known_ids(text: str, vocab: Vocabulary, chars: int) -> tuple[np.ndarray, float]:
    """Ids of the text's first `chars` known characters, and the share of characters dropped."""
    ids = encode(text, vocab)
    known = ids[ids != vocab.oov_id]
    return known[:chars], 1 - len(known) / max(len(ids), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", type=Path, nargs="+", help="folders with model.keras, vocab.json")
    ap.add_argument("--reviews", type=Path, default=Path("data/interim/imdb/reviews.parquet"))
    ap.add_argument("--novel-test", type=Path, default=Path("data/processed/charlm/test.npz"))
    ap.add_argument("--text", type=Path, action="append", default=[], help="more text files")
    ap.add_argument("--chars", type=int, default=100_000, help="characters of each text")
    args = ap.parse_args()

    try:
        novel = load_ids(args.novel_test)
        texts = {"IMDb test reviews": reviews_text(args.reviews, args.chars)}
        texts |= {p.name: p.read_text(encoding="utf-8") for p in args.text}
        print("| model | novel test | " + " | ".join(texts) + " | seconds |")
        print("| --- | ---: |" + " ---: |" * len(texts) + " ---: |")
        for folder in args.models:
            model = load_model(folder / "model.keras")
            vocab = Vocabulary.load(folder / "vocab.json")
            t = time.perf_counter()
            row = [f"{stream_loss(model, novel):.4f}"]
            for text in texts.values():
                ids, dropped = known_ids(text, vocab, args.chars)
                row.append(
                    f"{stream_loss(model, ids):.4f} ({len(ids):,} chars, {dropped:.2%} dropped)"
                )
            print(f"| {folder} | " + " | ".join(row) + f" | {time.perf_counter() - t:.0f} |")
    except (PipelineError, OSError, UnicodeDecodeError) as e:
        sys.exit(f"charlm_out_of_domain: {e}")


if __name__ == "__main__":
    main()
