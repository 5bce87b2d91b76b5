"""Characters per second when generating text, one character at a time, from the char LMs the
compare stage sets side by side (random weights: speed does not depend on training):

1. LSTM-512, one recurrent step per character with carried state (rnnpipe's Generator);
2. Transformer (width 256, 4 heads, 2 blocks, context 100), one step per character against
   its key/value cache (rnnpipe's Generator, rnnpipe.core.attention.CachedDecoder);
3. the same Transformer re-reading its whole context (up to 100 characters) for every new
   character, in the same NumPy code without a cache;
4. the same, with the Keras model compiled by tf.function (the usual way without a cache).

Run (TensorFlow backend):
    python benchmarks/bench_generate_attention.py [--chars 2000]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from bench_generate import rate  # noqa: E402  (benchmarks/ is on sys.path when run as a script)
from threadpoolctl import threadpool_limits  # noqa: E402

from rnnpipe.charlm import chars  # noqa: E402
from rnnpipe.charlm.model import build_char_lm  # noqa: E402
from rnnpipe.charlm.params import CharlmModelParams  # noqa: E402
from rnnpipe.charlm.sampler import Generator, probabilities  # noqa: E402
from rnnpipe.core.attention import CachedDecoder  # noqa: E402
from rnnpipe.core.vocab import char_vocabulary  # noqa: E402

ALPHABET = "".join(chr(c) for c in range(32, 111))  # 79 characters, as in the novel
PROMPT = "The island"


def rereading(next_logits, vocab, length, context, seed=0):
    """Sampling that re-reads the last `context` characters for every new one."""
    rng = np.random.default_rng(seed)
    ids = list(chars.encode(PROMPT, vocab))
    for _ in range(length):
        p = probabilities(next_logits(np.array(ids[-context:], "int32")), 1.0)
        ids.append(int(rng.choice(len(p), p=p)))
    return ids


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chars", type=int, default=2000, help="characters per cached sampler")
    ap.add_argument("--reread", type=int, default=300, help="characters per re-reading one")
    args = ap.parse_args()
    tf.random.set_seed(0)
    vocab = char_vocabulary(ALPHABET)
    # every model key: CharlmModelParams has no defaults (params.yaml gives them)
    base = dict(
        layers=1,
        embedding_dim=64,
        dropout=0.0,
        learning_rate=1e-3,
        lr_decay=1.0,
        clipnorm=1.0,
        seq_length=100,
        heads=4,
    )
    lstm = build_char_lm(CharlmModelParams(**base, cell="LSTM", units=512).model_dump(), len(vocab))
    hp = CharlmModelParams(**base | dict(cell="Transformer", units=256, layers=2)).model_dump()
    attention = build_char_lm(hp, len(vocab))
    decoder = CachedDecoder(attention)
    compiled = tf.function(attention, input_signature=[tf.TensorSpec([1, None], tf.int32)])

    def numpy_reread(n):
        with threadpool_limits(limits=1, user_api="blas"):
            rereading(lambda ids: decoder.full_logits(ids)[-1], vocab, n, 100)

    rows = [
        (
            "LSTM-512, carried state",
            lstm.count_params(),
            rate(lambda n: Generator(lstm, vocab).generate(PROMPT, n, 1.0), args.chars),
        ),
        (
            "Transformer, key/value cache",
            attention.count_params(),
            rate(lambda n: Generator(attention, vocab).generate(PROMPT, n, 1.0), args.chars),
        ),
        ("Transformer, re-read (NumPy)", attention.count_params(), rate(numpy_reread, args.reread)),
        (
            "Transformer, re-read (tf.function)",
            attention.count_params(),
            rate(
                lambda n: rereading(
                    lambda ids: np.asarray(compiled(ids[None]))[0, -1], vocab, n, 100
                ),
                args.reread,
            ),
        ),
    ]
    cached = rows[1][2]
    print(f"vocabulary {len(vocab)}, prompt {PROMPT!r}, {os.cpu_count()} CPUs")
    print(f"{'sampler':36s} {'params':>9s} {'chars/s':>9s} {'cache is x faster':>18s}")
    for name, params, r in rows:
        print(f"{name:36s} {params:9d} {r:9.1f} {cached / r:18.2f}")


if __name__ == "__main__":
    main()
