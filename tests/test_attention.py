"""Self-attention beside the recurrent cells: the Transformer choice of both builders, its
NumPy decoder with a key/value cache, and the held-out scoring of an attention char LM."""

import math

import keras
import numpy as np
import pytest

from rnnpipe.charlm import chars
from rnnpipe.charlm.feed import make_feed
from rnnpipe.charlm.model import build_char_lm
from rnnpipe.charlm.sampler import Generator, probabilities, stream_loss
from rnnpipe.core.attention import CachedDecoder, PositionEmbedding, is_attention, window_loss
from rnnpipe.core.training import TimeLimit
from rnnpipe.core.vocab import char_vocabulary
from rnnpipe.imdb.model import build_sentiment_model, predict_proba
from rnnpipe.imdb.params import SentimentModelParams
from tests.test_tuning import mlflow_template, tracking_uri  # noqa: F401  (fixtures)
from tests.tinydata import charlm_params, sentiment_params

VOCAB = char_vocabulary("The island of Lincoln, in the Pacific.\n")


def sentiment_hp(**kw):
    return sentiment_params(
        **(
            {
                "cell": "Transformer",
                "units": 16,
                "heads": 4,
                "layers": 2,
                "embedding_dim": 8,
                "dropout": 0.1,
                "max_positions": 40,
            }
            | kw
        )
    ).model_dump()


def char_hp(**kw):
    return charlm_params(
        **(
            {
                "cell": "Transformer",
                "units": 16,
                "heads": 2,
                "layers": 2,
                "embedding_dim": 8,
                "dropout": 0.1,
                "seq_length": 12,
            }
            | kw
        )
    ).model_dump()


@pytest.mark.parametrize("pooling", ["last", "max", "mean", "maxmean"])
def test_sentiment_transformer_shape_and_padding_does_not_change_a_prediction(pooling):
    model = build_sentiment_model(sentiment_hp(pooling=pooling), 50)
    assert is_attention(model)
    review = [5, 9, 17, 3, 22, 8]
    rows = np.zeros((3, 30), "int32")
    rows[0, :6] = review  # padded to 30
    rows[1, :6] = review[::-1]
    rows[2, :2] = review[:2]
    out = np.asarray(model.predict_on_batch(rows))
    assert out.shape == (3, 1)
    assert np.all((out > 0) & (out < 1))
    alone = np.asarray(model.predict_on_batch(np.array([review], "int32")))
    np.testing.assert_allclose(out[0], alone[0], rtol=1e-5, atol=1e-6)
    # the padding is masked out of attention too: a different pad length, the same answer
    longer = np.zeros((1, 40), "int32")
    longer[0, :6] = review
    np.testing.assert_allclose(
        np.asarray(model.predict_on_batch(longer))[0], alone[0], rtol=1e-5, atol=1e-6
    )
    # predict_proba batches by length: the same answers in row order
    np.testing.assert_allclose(
        predict_proba(model, rows, np.array([6, 6, 2])), out[:, 0], rtol=1e-5, atol=1e-6
    )


def test_sentiment_transformer_reads_order_and_saves(tmp_path):
    model = build_sentiment_model(sentiment_hp(pooling="maxmean"), 50)
    a = np.array([[5, 9, 17, 3, 22, 8]], "int32")
    # position embeddings: the same words in another order are another input
    assert not np.allclose(model.predict_on_batch(a), model.predict_on_batch(a[:, ::-1]))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict_on_batch(a), model.predict_on_batch(a), rtol=1e-6)


def test_sentiment_transformer_takes_pretrained_vectors_and_projects_them_to_its_width():
    vectors = np.random.default_rng(0).normal(size=(50, 8)).astype("float32")
    model = build_sentiment_model(sentiment_hp(pretrained=True), 50, vectors)
    np.testing.assert_array_equal(model.get_layer("embedding").get_weights()[0], vectors)
    assert model.get_layer("to_width").get_weights()[0].shape == (8, 16)
    # width = embedding size: the word vectors go in as they are
    same = build_sentiment_model(sentiment_hp(embedding_dim=16), 50)
    assert "to_width" not in {layer.name for layer in same.layers}


def test_a_review_longer_than_the_position_table_is_refused():
    model = build_sentiment_model(sentiment_hp(max_positions=8), 50)
    with pytest.raises(Exception, match="8"):
        model.predict_on_batch(np.ones((1, 9), "int32"))
    with pytest.raises(ValueError, match="do not fit a position table of 8"):
        PositionEmbedding(8).build((None, 9, 4))


def test_heads_must_divide_the_width():
    with pytest.raises(ValueError, match="heads"):
        build_sentiment_model(dict(sentiment_hp(), heads=3), 50)


def test_char_transformer_gives_logits_for_every_position_and_is_causal():
    model = build_char_lm(char_hp(), len(VOCAB))
    ids = np.random.default_rng(1).integers(0, len(VOCAB), (2, 12)).astype("int32")
    logits = np.asarray(model.predict_on_batch(ids))
    assert logits.shape == (2, 12, len(VOCAB))
    changed = ids.copy()
    changed[:, 7] = (changed[:, 7] + 1) % len(VOCAB)
    after = np.asarray(model.predict_on_batch(changed))
    # a later character never changes an earlier prediction; it does change its own and later
    np.testing.assert_array_equal(after[:, :7], logits[:, :7])
    assert not np.allclose(after[:, 7:], logits[:, 7:])


def test_cached_steps_equal_the_full_forward_pass():
    model = build_char_lm(char_hp(), len(VOCAB))
    ids = np.random.default_rng(2).integers(0, len(VOCAB), 12)
    full = np.asarray(model.predict_on_batch(ids[None].astype("int32")))[0]
    decoder = CachedDecoder(model)
    np.testing.assert_allclose(decoder.full_logits(ids), full, rtol=1e-4, atol=1e-5)
    logits, cache = decoder.read([ids[:3]])
    steps = [logits[0]]
    for i in ids[3:]:
        logits, cache = decoder.step([i], cache)
        steps.append(logits[0])
    # the logits after reading ids[:t + 1], one id at a time against the cache
    np.testing.assert_allclose(np.stack(steps[:-1]), full[2:-1], rtol=1e-4, atol=1e-5)
    # and the same bits as reading them all at once: a prefill is the steps' arithmetic
    np.testing.assert_array_equal(np.stack(steps), decoder.full_logits(ids)[2:])
    assert cache["length"].tolist() == [12] and cache["ids"] == [ids.tolist()]
    # the table is full: the next step goes on from the last half of the context
    logits, cache = decoder.step([ids[0]], cache)
    window = np.array([*ids[-6:], ids[0]], "int32")
    expected = np.asarray(model.predict_on_batch(window[None]))[0, -1]
    np.testing.assert_allclose(logits[0], expected, rtol=1e-4, atol=1e-5)
    assert cache["length"].tolist() == [7] and cache["ids"] == [window.tolist()]


def test_generation_from_an_attention_model():
    model = build_char_lm(char_hp(), len(VOCAB))
    gen = Generator(model, VOCAB)
    assert gen.attention
    prompt = "The island"
    whole = np.asarray(model.predict_on_batch(chars.encode(prompt, VOCAB)[None]))[0, -1]
    np.testing.assert_allclose(
        gen.next_distribution(prompt, 0.7), probabilities(whole, 0.7), rtol=1e-4, atol=1e-6
    )
    # longer than the context (12): the cache slides, the text goes on
    text = gen.generate(prompt, 40, 1.0, seed=3)
    assert text.startswith(prompt) and len(text) == len(prompt) + 40
    assert set(text) <= set(VOCAB.tokens[1:])
    assert gen.generate(prompt, 40, 1.0, seed=3) == text


def _reference_window_loss(model, ids, window):
    """Each target t predicted from the window that scores it, computed one target at a time."""
    stride = window // 2
    total = 0.0
    for t in range(1, len(ids)):
        # windows start every `stride`; the first covers targets 1..window, each later one the
        # `stride` targets after the previous one
        start = 0 if t <= window else ((t - window - 1) // stride + 1) * stride
        z = np.asarray(model.predict_on_batch(ids[None, start:t].astype("int32")), "float64")[0, -1]
        total -= z[ids[t]] - z.max() - math.log(np.exp(z - z.max()).sum())
    return total / (len(ids) - 1)


@pytest.mark.parametrize("n", [8, 13, 40])
def test_held_out_loss_of_an_attention_model_reads_overlapping_windows(n):
    model = build_char_lm(char_hp(layers=1), len(VOCAB))
    ids = np.random.default_rng(n).integers(0, len(VOCAB), n)
    got = window_loss(model, ids, batch_size=2)
    assert got == pytest.approx(_reference_window_loss(model, ids, 12), rel=1e-4)
    # the same protocol: stream_loss reads an attention model with window_loss. Exact only at
    # the same batch size: how many windows go into one model call changes the last bits of
    # the logits on some CPUs (measured on an AVX2 EPYC: 1.3e-8 relative between 2 and 64)
    assert stream_loss(model, ids) == window_loss(model, ids)
    assert got == pytest.approx(window_loss(model, ids), rel=1e-6)


@pytest.mark.slow  # trains a model
def test_attention_model_learns_the_text_below_a_uniform_guess():
    text = "the island of lincoln. " * 40
    vocab = char_vocabulary(text)
    ids = chars.encode(text, vocab)
    feed = make_feed(ids[:800], ids[800:], "tbptt", 4, 12)
    keras.utils.set_random_seed(0)
    model = feed.build(char_hp(dropout=0.0, learning_rate=0.01), len(vocab))
    assert not any(getattr(layer, "stateful", False) for layer in model.layers)
    kwargs = dict(feed.fit_kwargs)
    model.fit(kwargs.pop("x"), kwargs.pop("y"), epochs=3, verbose=0, **kwargs)
    # a repeating text: far below the uniform guess log(V) after three epochs
    assert stream_loss(model, ids[800:]) < 0.5 * math.log(len(vocab))


def test_time_limit_stops_after_the_epoch_that_passes_it():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x = np.zeros((8, 2), "float32")
    limit = TimeLimit(0.0)
    history = model.fit(x, x[:, :1], epochs=5, verbose=0, callbacks=[limit])
    assert len(history.history["loss"]) == 1 and limit.cut
    # a budget reached in the last epoch cuts nothing
    limit = TimeLimit(0.0)
    model.fit(x, x[:, :1], epochs=1, verbose=0, callbacks=[limit])
    assert not limit.cut
    limit = TimeLimit(None)
    assert (
        len(model.fit(x, x[:, :1], epochs=3, verbose=0, callbacks=[limit]).history["loss"]) == 3
        and not limit.cut
    )


@pytest.mark.slow  # a search of 4 trials
@pytest.mark.usefixtures("tracking_uri")  # a store of its own
def test_the_search_may_choose_a_transformer(tmp_path):
    from rnnpipe.core import search
    from rnnpipe.imdb.params import ImdbTuneParams

    tune = ImdbTuneParams(
        tuner="random",
        max_trials=2,
        epochs=1,
        batch_size=8,
        space={
            "cell": ["Transformer"],
            "units": [8],
            "heads": [2, 4],
            "embedding_dim": [8],
            "max_positions": [16],
            "learning_rate": [0.01],
        },
    )
    rng = np.random.default_rng(0)
    x = rng.integers(2, 30, size=(40, 10)).astype("int32")
    y = (x == 3).any(axis=1).astype("float32")
    task = search.Task(
        project="tiny",
        build=lambda hp: build_sentiment_model(hp, 30),
        base=search.fixed_keys(sentiment_params(), tune.space),
        data=lambda hp: {
            "x": x[:32],
            "y": y[:32],
            "batch_size": 8,
            "validation_data": (x[32:], y[32:]),
        },
        fingerprint=search.fingerprint(extra=x.tobytes()),
    )
    result = search.run_search(task, tune, seed=0, tuner_root=tmp_path / ".tuner", verbose=0)
    best = result["hparams"]
    assert result["trials"] == 2
    assert best["cell"] == "Transformer" and best["heads"] in (2, 4)
    sentiment_params(**best)  # the answer is a valid model of the schema


def test_compare_rows_refuse_a_tuned_transformer_and_bad_attention_keys():
    from rnnpipe.core.compare import row_hparams
    from rnnpipe.core.errors import PipelineError
    from rnnpipe.imdb.params import ImdbCompareParams

    tuned = sentiment_params(units=8).model_dump()
    compare = ImdbCompareParams(epochs=1, attention={"heads": 3})
    assert (
        row_hparams(tuned, compare, "recurrent", SentimentModelParams, "imdb.compare")["cell"]
        == tuned["cell"]
    )
    # heads 3 and the tuned width 8: an error naming the row, not a crash in the builder
    with pytest.raises(
        PipelineError,
        match=r"(?s)imdb\.compare\.attention: .*heads \(3\) must "
        r"divide units \(8\)",
    ):
        row_hparams(tuned, compare, "attention", SentimentModelParams, "imdb.compare")
    transformer = dict(tuned, cell="Transformer", heads=2)
    with pytest.raises(
        PipelineError,
        match=r"the tuned model is a Transformer: give "
        r"imdb\.compare\.recurrent\.cell",
    ):
        row_hparams(
            transformer,
            ImdbCompareParams(epochs=1, attention={}),
            "recurrent",
            SentimentModelParams,
            "imdb.compare",
        )
