from collections import Counter

import numpy as np
import pytest

from rnnpipe.core.vocab import Vocabulary
from rnnpipe.imdb import words


def test_html_breaks_become_spaces():
    assert words.tokenize("Great.<br /><br />Loved it<br/>really<BR>") == [
        "great",
        ".",
        "loved",
        "it",
        "really",
    ]


def test_lowercase_and_punctuation_split():
    assert words.tokenize('Wow!!! "Best" film, ever?') == [
        "wow",
        "!",
        "!",
        "!",
        '"',
        "best",
        '"',
        "film",
        ",",
        "ever",
        "?",
    ]


def test_apostrophes_inside_words_are_kept():
    assert words.tokenize("I don't know, it isn't the film's fault") == [
        "i",
        "don't",
        "know",
        ",",
        "it",
        "isn't",
        "the",
        "film's",
        "fault",
    ]
    # typographic apostrophe, and quotes around a word
    assert words.tokenize("Don\u2019t 'quote' me") == ["don't", "'", "quote", "'", "me"]


def test_unicode_letters_stay_words():
    assert words.tokenize("Café naïve Amélie 東京 Ünïcode") == [
        "café",
        "naïve",
        "amélie",
        "東京",
        "ünïcode",
    ]
    assert words.tokenize("a\u00a0b") == ["a", "b"]  # no-break space separates


def test_empty_and_blank_reviews_have_no_tokens():
    assert words.tokenize("") == []
    assert words.tokenize("  \n ") == []
    assert words.tokenize_array(["", "a b", " "]).to_pylist() == [None, ["a", "b"], None]


def test_many_reviews_tokenize_like_one_at_a_time():
    texts = [f"Review {i}: it isn't bad!<br />Really {i % 7}." for i in range(2500)]
    threaded = words.tokenize_array(texts).to_pylist()  # 1,000 or more: two threads' slices
    assert threaded == words.tokenize_array(texts, threads=1).to_pylist()
    # one at a time: the ends, both sides of the slices' boundary, and a spread between
    for i in [0, 1, 1249, 1250, 1251, 2499, *range(0, 2500, 61)]:
        assert threaded[i] == words.tokenize(texts[i]), i


def _vocab():
    return words.build_vocabulary(
        ["the film the end", "the film was great", "odd"], max_tokens=10, min_count=2
    )


def test_vocabulary_ranks_by_count_with_pad_and_oov_first():
    v = _vocab()
    assert v.tokens == ("<pad>", "<oov>", "the", "film")  # min_count 2 drops the rest
    assert (v.pad_id, v.oov_id) == (0, 1)


def test_vocabulary_ids_are_stable_and_roundtrip(tmp_path):
    texts = ["b a c", "c b a", "a"]
    first = words.build_vocabulary(texts, 10, 1)
    assert first == words.build_vocabulary(list(reversed(texts)), 10, 1)
    assert first.tokens[2:] == ("a", "b", "c")  # ties broken alphabetically
    first.save(tmp_path / "v.json")
    assert Vocabulary.load(tmp_path / "v.json") == first


def test_vocabulary_respects_max_tokens():
    v = words.build_vocabulary(["a a a b b c"], max_tokens=4, min_count=1)
    assert v.tokens == ("<pad>", "<oov>", "a", "b")


def test_count_tokens():
    assert words.count_tokens(words.tokenize_array(["a b a", "b"])) == Counter(a=2, b=2)


def test_encode_pads_right_and_maps_unknown_words_to_oov():
    v = _vocab()
    ids, lengths = words.encode_texts(["the film", "the unknown film", ""], v, max_len=4)
    assert ids.dtype == np.int32 and lengths.dtype == np.int32
    assert ids.tolist() == [[2, 3, 0, 0], [2, 1, 3, 0], [0, 0, 0, 0]]
    assert lengths.tolist() == [2, 3, 0]


@pytest.mark.parametrize(("keep", "expected"), [("start", [2, 3]), ("end", [3, 1])])
def test_truncation_keeps_start_or_end(keep, expected):
    ids, lengths = words.encode_texts(["the film odd"], _vocab(), max_len=2, keep=keep)
    assert ids.tolist() == [expected]
    assert lengths.tolist() == [2]


def test_bad_truncation_side_is_an_error():
    with pytest.raises(ValueError, match="start"):
        words.encode_texts(["a"], _vocab(), 2, keep="middle")
