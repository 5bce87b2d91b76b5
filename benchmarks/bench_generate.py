"""Characters per second of three samplers with the same LSTM-512 character model:

1. textbook, eager: for each new character, re-read the last 40 characters through the whole
   model (the sampler of Raschka & Mirjalili, ch. 16), calling the model eagerly;
2. textbook, compiled: the same, with the model call wrapped in tf.function;
3. rnnpipe: the prompt read once, then one recurrent step per character with carried state
   (rnnpipe.charlm.sampler.Generator).

Random weights: speed does not depend on training. Run (TensorFlow backend):
    python benchmarks/bench_generate.py [--units 512] [--eager 40] [--compiled 300] [--ours 3000]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from rnnpipe.charlm import chars  # noqa: E402
from rnnpipe.charlm.model import build_char_lm  # noqa: E402
from rnnpipe.charlm.sampler import Generator  # noqa: E402
from rnnpipe.core.vocab import char_vocabulary  # noqa: E402

ALPHABET = "".join(chr(c) for c in range(32, 111))  # 79 characters, as in the novel


def textbook_sample(model_call, vocab, prompt, length, max_input_length=40, scale_factor=1.0):
    """The textbook's sampler, as written there (scale_factor multiplies the logits)."""
    encoded_input = tf.reshape(chars.encode(prompt, vocab), (1, -1))
    generated_str = prompt
    for _ in range(length):
        logits = model_call(encoded_input)
        logits = tf.squeeze(logits, 0)
        scaled_logits = logits * scale_factor
        new_char_indx = tf.random.categorical(scaled_logits, num_samples=1)
        new_char_indx = tf.squeeze(new_char_indx)[-1].numpy()
        generated_str += vocab.tokens[new_char_indx]
        new_char_indx = tf.expand_dims([new_char_indx], 0)
        encoded_input = tf.concat([encoded_input, tf.cast(new_char_indx, tf.int32)], axis=1)
        encoded_input = encoded_input[:, -max_input_length:]
    return generated_str


def rate(fn, n):
    fn(min(n, 5))  # warm up: tracing, first calls
    t0 = time.perf_counter()
    fn(n)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--units", type=int, default=512)
    ap.add_argument("--eager", type=int, default=40, help="characters, textbook eager")
    ap.add_argument("--compiled", type=int, default=300, help="characters, textbook compiled")
    ap.add_argument("--ours", type=int, default=3000, help="characters, rnnpipe")
    args = ap.parse_args()
    tf.random.set_seed(0)
    vocab = char_vocabulary(ALPHABET)
    hp = dict(
        cell="LSTM",
        units=args.units,
        layers=1,
        embedding_dim=64,
        dropout=0.0,
        learning_rate=1e-3,
        clipnorm=1.0,
    )
    model = build_char_lm(hp, len(vocab))
    prompt = "The island"

    compiled = tf.function(model, input_signature=[tf.TensorSpec([1, None], tf.int32)])
    gen = Generator(model, vocab)
    rows = [
        ("textbook, eager", rate(lambda n: textbook_sample(model, vocab, prompt, n), args.eager)),
        (
            "textbook, tf.function",
            rate(lambda n: textbook_sample(compiled, vocab, prompt, n), args.compiled),
        ),
        (
            "rnnpipe (one step, carried state)",
            rate(lambda n: gen.generate(prompt, n, 1.0, seed=0), args.ours),
        ),
    ]
    ours = rows[-1][1]
    print(f"LSTM-{args.units}, vocabulary {len(vocab)}, prompt {prompt!r}")
    print(f"{'sampler':36s} {'chars/s':>9s} {'rnnpipe is x faster':>20s}")
    for name, r in rows:
        print(f"{name:36s} {r:9.1f} {ours / r:20.1f}")


if __name__ == "__main__":
    main()
