import numpy as np
import pytest

from rnnpipe.charlm import chars
from rnnpipe.charlm.model import build_char_lm
from rnnpipe.charlm.sampler import Generator, probabilities, stream_loss
from rnnpipe.core.vocab import char_vocabulary

VOCAB = char_vocabulary("The island of Lincoln.\n")


def model(cell="LSTM", stateful=False):
    hp = dict(
        cell=cell,
        units=16,
        layers=2,
        embedding_dim=8,
        dropout=0.1,
        learning_rate=1e-3,
        clipnorm=1.0,
    )
    return build_char_lm(hp, len(VOCAB), stateful=stateful, batch_size=4 if stateful else None)


@pytest.mark.parametrize("cell", ["SimpleRNN", "LSTM", "GRU"])
def test_stepwise_generation_matches_reading_the_whole_prompt(cell):
    m = model(cell)
    gen = Generator(m, VOCAB)
    prompt = "The island"
    whole = m.predict(chars.encode(prompt, VOCAB)[None, :], verbose=0)[0, -1]
    for t in (0.5, 1.0, 1.5):
        np.testing.assert_allclose(
            gen.next_distribution(prompt, t), probabilities(whole, t), rtol=1e-4, atol=1e-6
        )
    # after sampling, each character was one step with carried state: still the same as a
    # whole read of the text so far
    text = gen.generate(prompt, 5, 1.0, seed=3)
    whole = m.predict(chars.encode(text, VOCAB)[None, :], verbose=0)[0, -1]
    np.testing.assert_allclose(
        gen.next_distribution(text), probabilities(whole, 1.0), rtol=1e-4, atol=1e-6
    )


def test_a_stateful_training_model_generates_like_its_stateless_twin():
    stateful = model(stateful=True)
    stateless = model()
    stateless.set_weights(stateful.get_weights())
    a = Generator(stateful, VOCAB).generate("The", 30, 1.0, seed=5)
    b = Generator(stateless, VOCAB).generate("The", 30, 1.0, seed=5)
    assert a == b


def test_same_seed_same_text_other_seed_other_text():
    gen = Generator(model(), VOCAB)
    a = gen.generate("The island", 60, 1.0, seed=1)
    assert a == gen.generate("The island", 60, 1.0, seed=1)
    assert a != gen.generate("The island", 60, 1.0, seed=2)
    assert a.startswith("The island") and len(a) == 70
    assert "<unk>" not in a


def test_unknown_prompt_characters_and_top_k():
    gen = Generator(model(), VOCAB)
    text = gen.generate("Zz~ é", 40, 2.0, seed=0, top_k=1)
    # top_k=1 is greedy: the same whatever the seed
    assert text == gen.generate("Zz~ é", 40, 2.0, seed=9, top_k=1)


def test_probabilities_temperature_and_top_k():
    logits = np.array([1.0, 2.0, 3.0, 0.5])
    p1 = probabilities(logits, 1.0)
    assert p1.sum() == pytest.approx(1.0)
    cold, hot = probabilities(logits, 0.1), probabilities(logits, 10.0)
    assert cold[2] > p1[2] > hot[2]  # lower temperature, sharper distribution
    top2 = probabilities(logits, 1.0, top_k=2)
    assert (top2 > 0).tolist() == [False, True, True, False]
    assert probabilities(logits, 1.0, banned=(2,))[2] == 0


def test_stream_loss_equals_the_loss_of_one_long_read():
    m = model()
    ids = chars.encode("The island of Lincoln. " * 6, VOCAB)
    logits = m.predict(ids[None, :-1], verbose=0)[0].astype("float64")
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -logp[np.arange(len(ids) - 1), ids[1:]].mean()
    assert stream_loss(m, ids, chunk=25) == pytest.approx(expected, rel=1e-4)
