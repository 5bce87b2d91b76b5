"""Generation in batches (rnnpipe.charlm.sampler.Generator.generate_many): a row's text, and
every bit of its logits, is the same alone as in any batch, for every kind of model."""

import time
from types import SimpleNamespace

import keras
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from threadpoolctl import threadpool_limits

from rnnpipe.charlm import chars, sampler
from rnnpipe.charlm.model import build_char_lm
from rnnpipe.charlm.pyfunc import CharLM
from rnnpipe.charlm.sampler import Generator, distributions, probabilities, sample
from rnnpipe.core.attention import ExactDense
from rnnpipe.core.vocab import char_vocabulary

ALPHABET = "".join(chr(c) for c in range(32, 111))  # 79 characters, as in the novel
VOCAB = char_vocabulary(ALPHABET)
SERVING = "_MLFLOW_IS_IN_SERVING_ENVIRONMENT"


def char_lm(cell, units, layers, seed, **kw):
    keras.utils.set_random_seed(seed)
    hp = (
        dict(
            cell=cell,
            units=units,
            layers=layers,
            embedding_dim=64,
            dropout=0.1,
            learning_rate=1e-3,
            clipnorm=1.0,
            heads=4,
            seq_length=24,
        )
        | kw
    )
    return build_char_lm(hp, len(VOCAB))


def random_rows(rng, n, max_prompt=30, max_length=60):
    """Rows of every kind: prompts of 1..max_prompt characters (some unknown to the model),
    lengths 0..max_length, temperatures 0.5-2, top_k on and off, any seed."""
    letters = list(ALPHABET) + ["é", "~", "😀"]
    return [
        {
            "prompt": "".join(rng.choice(letters, rng.integers(1, max_prompt + 1))),
            "length": int(rng.choice([0, 1, rng.integers(2, max_length + 1)], p=[0.1, 0.1, 0.8])),
            "temperature": float(rng.uniform(0.5, 2.0)),
            "seed": int(rng.integers(0, 2**31)),
            "top_k": [None, None, 1, 5, int(rng.integers(2, 80))][rng.integers(0, 5)],
        }
        for _ in range(n)
    ]


def assert_alone_equals_batched(gen, rng, pool=64, batch_sizes=(1, 2, 3, 7, 16, 64), **kw):
    rows = random_rows(rng, pool, **kw)
    alone = [gen.generate_many([row])[0] for row in rows]
    for row, text in zip(rows, alone, strict=True):
        assert text.startswith(row["prompt"]) and len(text) == len(row["prompt"]) + row["length"]
    for size in batch_sizes:
        # any composition: a random choice of rows (a row may come twice), in any order
        pick = rng.choice(pool, size, replace=size > pool)
        assert gen.generate_many([rows[i] for i in pick]) == [alone[i] for i in pick], size


MODELS = [
    ("SimpleRNN", 384, 2),
    ("LSTM", 512, 1),
    ("LSTM", 256, 2),
    ("GRU", 512, 1),
    ("GRU", 256, 2),
]


@pytest.mark.parametrize("cell, units, layers", MODELS)
def test_a_row_writes_the_same_text_alone_or_in_any_batch(cell, units, layers):
    gen = Generator(char_lm(cell, units, layers, seed=units + layers), VOCAB)
    assert_alone_equals_batched(gen, np.random.default_rng(units * layers))


def test_an_attention_model_writes_the_same_text_alone_or_in_any_batch():
    # context 24: rows of other lengths fill and rebuild their caches at other steps
    gen = Generator(char_lm("Transformer", 64, 2, seed=1), VOCAB)
    assert gen.context == 24
    assert_alone_equals_batched(gen, np.random.default_rng(2), max_prompt=40, max_length=70)


def replay(stepper, prompts, ids):
    """The logits of every step of each row: its prompt read, then ids[row] one at a time."""
    logits, state = stepper.read(prompts)
    seen = [logits]
    for t in range(ids.shape[1]):
        logits, state = stepper.step(ids[:, t], state)
        seen.append(logits)
    return np.stack(seen, axis=1)  # [rows, steps + 1, vocab]


def assert_same_bits_alone_and_batched(stepper, rng, pool, batch_sizes, max_prompt=40, steps=30):
    """Rows of other prompt lengths (so at other positions), each then fed its own ids: every
    logit of a row in a batch has the bits of the row's logits alone."""
    prompts = [rng.integers(0, len(VOCAB), rng.integers(1, max_prompt + 1)) for _ in range(pool)]
    ids = rng.integers(1, len(VOCAB), (pool, steps))
    alone = [replay(stepper, prompts[r : r + 1], ids[r : r + 1])[0] for r in range(pool)]
    for size in batch_sizes:
        pick = rng.choice(pool, size, replace=size > pool)
        batched = replay(stepper, [prompts[i] for i in pick], ids[pick])
        for got, i in zip(batched, pick, strict=True):
            np.testing.assert_array_equal(got, alone[i])


@pytest.mark.parametrize("cell, units, layers", [*MODELS, ("Transformer", 64, 2)])
def test_every_bit_of_a_rows_logits_is_the_same_alone_or_in_a_batch(cell, units, layers):
    gen = Generator(char_lm(cell, units, layers, seed=7), VOCAB)
    assert_same_bits_alone_and_batched(gen.stepper, np.random.default_rng(8), 16, (16, 5, 2))


FULL_SIZE = [("GRU", 512, 1), ("LSTM", 512, 2), ("SimpleRNN", 512, 1), ("Transformer", 256, 2)]


@pytest.fixture
def one_blas_thread():
    """One BLAS thread, as generate_many steps with. Under `make test` the other worker keeps
    the second core busy, and a product split over two threads then waits for it at every
    step: the full-size bits tests took 65-71 s each that way, 7-9 s with one thread. (The
    small models' bits test keeps BLAS's own threads: the bits do not depend on them.)"""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.mark.slow  # the full-size models, more rows and seeds
@pytest.mark.parametrize("seed", [3, 4])
@pytest.mark.parametrize("cell, units, layers", FULL_SIZE)
def test_full_size_models_write_the_same_text_alone_or_in_any_batch(cell, units, layers, seed):
    gen = Generator(char_lm(cell, units, layers, seed, seq_length=100), VOCAB)
    # 32 rows alone per seed (most of the test's time), in batches of up to 64 (rows repeat)
    assert_alone_equals_batched(
        gen,
        np.random.default_rng(seed),
        pool=32,
        max_prompt=150,
        max_length=160,
        batch_sizes=(2, 5, 31, 64, 64),
    )


@pytest.mark.slow  # the full-size models, 32 rows alone and in batches of up to 64
@pytest.mark.parametrize("cell, units, layers", FULL_SIZE)
@pytest.mark.usefixtures("one_blas_thread")
def test_full_size_models_give_every_row_the_same_bits_alone_or_in_any_batch(cell, units, layers):
    gen = Generator(char_lm(cell, units, layers, seed=5, seq_length=100), VOCAB)
    # prompts up to 130 ids and 60 more: most attention caches are rebuilt, at other steps
    assert_same_bits_alone_and_batched(
        gen.stepper, np.random.default_rng(6), 32, (64, 17), max_prompt=130, steps=60
    )


def test_the_numpy_steps_of_a_batch_match_the_keras_model():
    for cell in ("SimpleRNN", "LSTM", "GRU", "Transformer"):
        model = char_lm(cell, 32, 2, seed=9, seq_length=40)
        gen = Generator(model, VOCAB)
        rng = np.random.default_rng(10)
        ids = rng.integers(0, len(VOCAB), (5, 30))
        prompt = [ids[r, : 3 + 4 * r] for r in range(5)]  # 3 to 19 ids
        rest = np.stack([ids[r, 3 + 4 * r :][:11] for r in range(5)])
        got = replay(gen.stepper, prompt, rest)  # [5, 12, vocab]
        for r in range(5):
            text = np.concatenate([prompt[r], rest[r]])[None].astype("int32")
            whole = np.asarray(model.predict_on_batch(text))[0, len(prompt[r]) - 1 :]
            np.testing.assert_allclose(got[r], whole, rtol=1e-4, atol=2e-5, err_msg=cell)


def test_exact_products_do_not_depend_on_the_batch_or_the_order():
    rng = np.random.default_rng(11)
    for k in (1, 7, 64, 512, 1536):
        # weights and inputs over many magnitudes, as trained weights and states are
        kernel = rng.normal(size=(k, 300)) * np.exp(rng.normal(size=(k, 300)) * 3)
        x = (rng.normal(size=(64, k)) * np.exp(rng.normal(size=(64, k)) * 3)).astype("float32")
        dense = ExactDense(kernel.astype("float32"))
        many = dense(x)
        assert many.dtype == np.float32
        np.testing.assert_array_equal(dense(x[::-1])[::-1], many)
        for r in (0, 17, 63):
            np.testing.assert_array_equal(dense(x[r]), many[r])
            np.testing.assert_array_equal(dense(x[r : r + 1])[0], many[r])
        # the error of rounding x and the kernel: at most 2**-bits of the largest entry
        x_bits = dense.x_bits
        w_bits = 53 - (k - 1).bit_length() - x_bits
        exact = x.astype("float64") @ kernel.astype("float32").astype("float64")
        x, w = np.abs(x.astype("float64")), np.abs(kernel.astype("float32").astype("float64"))
        bound = (
            2.0**-x_bits * x.max(1, keepdims=True) * w.sum(0)
            + 2.0**-w_bits * x.sum(1, keepdims=True) * w.max(0)
            + 2.0**-24 * np.abs(exact)
        )
        assert np.all(np.abs(many - exact) <= bound)
        assert 21 <= min(x_bits, w_bits) and max(x_bits, w_bits) <= 27


def test_sampling_a_batch_is_rng_choice_row_by_row():
    rng = np.random.default_rng(12)
    logits = rng.normal(size=(40, 80)) * rng.uniform(0.1, 5, (40, 1))
    temperature = rng.uniform(0.5, 2.0, 40)
    top_k = rng.choice([0, 1, 3, 80, 200], 40)
    p = distributions(logits, temperature, top_k, banned=(0,))
    for r in range(40):
        np.testing.assert_array_equal(
            p[r], probabilities(logits[r], temperature[r], top_k[r] or None, banned=(0,))
        )
        np.testing.assert_array_equal(
            distributions(logits[r : r + 1], temperature[r : r + 1], top_k[r : r + 1], (0,))[0],
            p[r],
        )
    assert p[:, 0].max() == 0 and np.allclose(p.sum(1), 1.0)
    assert ((p > 0).sum(1)[top_k == 1] == 1).all()
    for seed in range(50):
        ours, theirs = np.random.default_rng(seed), np.random.default_rng(seed)
        for _ in range(20):
            ids = sample(p, np.array([ours.random() for _ in range(40)]))
            assert ids.tolist() == [theirs.choice(80, p=row) for row in p]


def test_a_finished_row_stops_costing():
    gen = Generator(char_lm("GRU", 16, 1, seed=13), VOCAB)
    reads, steps = [], []
    read, step = gen.stepper.read, gen.stepper.step
    gen.stepper.read = lambda prompts: reads.append(len(prompts)) or read(prompts)
    gen.stepper.step = lambda ids, state: steps.append(len(ids)) or step(ids, state)
    rows = [{"prompt": "The", "length": n, "temperature": 1.0} for n in (1, 4, 0, 2)]
    texts = gen.generate_many(rows)
    assert [len(t) - 3 for t in texts] == [1, 4, 0, 2]
    # the row of 0 characters is not read; the prompts are read in 3 steps of 3 rows, then
    # no row steps after its last character: 4 characters need 3 steps, 2 need 1, 1 none
    assert reads == [3] and steps == [3, 3, 3, 2, 1, 1]
    assert texts == [gen.generate(**row) for row in rows]
    with pytest.raises(ValueError, match="temperature"):
        gen.generate_many([rows[0], dict(rows[0], temperature=0.0)])


def test_many_rows_are_stepped_in_batches_of_a_bounded_size(monkeypatch):
    gen = Generator(char_lm("GRU", 16, 1, seed=16), VOCAB)
    rows = random_rows(np.random.default_rng(17), 10)
    whole = gen.generate_many(rows)
    monkeypatch.setattr(sampler, "BATCH_ROWS", 3)
    reads, read = [], gen.stepper.read
    gen.stepper.read = lambda prompts: reads.append(len(prompts)) or read(prompts)
    assert gen.generate_many(rows) == whole
    assert max(reads) == 3 and sum(reads) == sum(row["length"] > 0 for row in rows)


def test_prompts_of_other_lengths_are_read_in_one_batch():
    gen = Generator(char_lm("LSTM", 32, 2, seed=14), VOCAB)
    prompts = ["a", "The island", "Lincoln!", "x" * 25]
    logits, states = gen.stepper.read([chars.encode(p, VOCAB) for p in prompts])
    for r, p in enumerate(prompts):
        alone, state = gen.stepper.read([chars.encode(p, VOCAB)])
        np.testing.assert_array_equal(logits[r], alone[0])
        for a, b in zip(states, state, strict=True):
            for x, y in zip(a, b, strict=True):
                np.testing.assert_array_equal(x[r], y[0])


def saved_charlm(tmp_path):
    model = char_lm("GRU", 32, 1, seed=15)
    model.save(tmp_path / "model.keras")
    VOCAB.save(tmp_path / "vocab.json")
    lm = CharLM()
    lm.load_context(
        SimpleNamespace(
            artifacts={
                "model": str(tmp_path / "model.keras"),
                "vocab": str(tmp_path / "vocab.json"),
            }
        )
    )
    return lm


def test_the_served_model_caps_a_request_by_its_cost(tmp_path, monkeypatch):
    lm = saved_charlm(tmp_path)
    monkeypatch.setattr("rnnpipe.charlm.sampler.step_costs", lambda gen: (1e-3, 1e-4))
    monkeypatch.setenv("MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT", "10")
    rows = pd.DataFrame([{"prompt": "The island", "length": 100, "temperature": 0.8}] * 64)
    monkeypatch.delenv(SERVING, raising=False)
    assert len(lm.predict(None, rows)) == 64  # offline: no cap
    monkeypatch.setenv(SERVING, "true")
    # 5 s (half the timeout) at 1.1 ms a character step: 4,545 steps; this request has 7,040
    with pytest.raises(
        MlflowException,
        match=r"this request needs 7,040 character steps; "
        r"this server accepts at most 4,545 per request "
        r"\(rows x \(prompt \+ length\)\); send fewer "
        r"or shorter rows",
    ) as e:
        lm.predict(None, rows)
    assert e.value.get_http_status_code() == 400
    out = lm.predict(None, rows[:40])  # 4,400 steps
    assert out["text"].tolist() == lm.generator.generate_many(
        [dict(r, seed=0, top_k=None) for r in rows[:40].to_dict("records")]
    )


@pytest.mark.slow  # measures the model, then generates for seconds
def test_a_request_at_the_measured_cap_finishes_well_inside_the_timeout(tmp_path, monkeypatch):
    from rnnpipe.core import requests

    lm = saved_charlm(tmp_path)
    monkeypatch.setenv("MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT", "6")
    monkeypatch.setenv(SERVING, "true")
    lm.predict(None, pd.DataFrame([{"prompt": "a", "length": 1, "temperature": 1.0}]))
    cap = lm.max_steps
    # the costliest shape of request at the cap: one row as long as can be (its steps are the
    # request's steps), the other steps spread over 63 rows
    first = min(cap, requests.longest_row())
    prompt = min(first - 1, requests.MAX_PROMPT_CHARS)
    rows = [
        {"prompt": ("The island " * 1000)[:prompt], "length": first - prompt, "temperature": 1.0}
    ]
    rest = (cap - first) // 63
    if rest >= 2:
        rows += [
            {"prompt": "a", "length": min(rest - 1, requests.MAX_LENGTH), "temperature": 1.0}
        ] * 63
    assert requests.character_steps(rows) <= cap
    start = time.perf_counter()
    lm.predict(None, pd.DataFrame(rows))
    assert time.perf_counter() - start < requests.request_timeout()
