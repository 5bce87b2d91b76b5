import numpy as np
import pytest

from rnnpipe.charlm import chars
from rnnpipe.charlm.model import stream_batches, window_batches
from rnnpipe.core.errors import PipelineError
from rnnpipe.core.vocab import Vocabulary, char_vocabulary


def test_vocabulary_from_training_part_only_and_unknown_characters():
    text = "abc" * 30 + "xyz" * 3 + "q"  # 100 characters: x, y, z, q only after 90 %
    v = char_vocabulary(chars.train_part(text, 0.9))
    assert v.tokens[0] == "<unk>" and v.oov_id == 0 and v.pad_id is None
    assert set(v.tokens[1:]) == {"a", "b", "c"}
    ids = chars.encode("abzq", v)
    assert ids.dtype == np.int32
    assert ids.tolist() == [v.index["a"], v.index["b"], 0, 0]
    assert chars.decode(chars.encode("cab", v), v) == "cab"


def test_vocabulary_round_trips_through_json(tmp_path):
    v = char_vocabulary("Hello, world!\n")
    v.save(tmp_path / "v.json")
    assert Vocabulary.load(tmp_path / "v.json") == v


@pytest.mark.parametrize("n", [100, 1001, 20_088])
def test_split_by_position_is_contiguous_without_overlap(n):
    parts = chars.split_by_position(n, 0.9, 0.05)
    assert parts["train"][0] == 0 and parts["test"][1] == n
    assert parts["train"][1] == parts["valid"][0] and parts["valid"][1] == parts["test"][0]
    assert parts["train"][1] == int(n * 0.9)
    sizes = [stop - start for start, stop in parts.values()]
    assert sum(sizes) == n and min(sizes) > 0


def test_split_of_too_short_text_is_a_clear_error():
    with pytest.raises(PipelineError, match="too short"):
        chars.split_by_position(10, 0.9, 0.05)


def test_stream_batches_continue_each_row_in_the_next_batch():
    ids = np.arange(1000, dtype=np.int32)
    batch, seq = 4, 10
    x, y = stream_batches(ids, batch, seq)
    assert x.shape == y.shape and x.shape[1] == seq and len(x) % batch == 0
    n_batches = len(x) // batch
    assert n_batches == (1000 // batch - 1) // seq
    for k in range(n_batches - 1):
        for i in range(batch):
            row, nxt = x[k * batch + i], x[(k + 1) * batch + i]
            assert nxt[0] == row[-1] + 1  # the next window starts where this one stopped
            assert (y[k * batch + i] == row + 1).all()  # targets: the next characters
    # the streams are disjoint, contiguous stretches of the text
    assert len(set(x.ravel().tolist())) == x.size


def test_window_batches_are_independent_chunks():
    x, y = window_batches(np.arange(35, dtype=np.int32), 10)
    assert x.shape == (3, 10)
    assert x[1, 0] == 10 and (y == x + 1).all()


def test_feeds_refuse_text_too_short():
    with pytest.raises(PipelineError):
        stream_batches(np.arange(30, dtype=np.int32), 4, 10)
    with pytest.raises(PipelineError):
        window_batches(np.arange(5, dtype=np.int32), 10)
