"""ServedEncoder gives exactly what words.encode_texts gives: every code point, random text, the
ids and lengths."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from rnnpipe.core.vocab import Vocabulary
from rnnpipe.imdb import served_tokens, words
from rnnpipe.imdb.served_tokens import ServedEncoder

EVERY = [chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000]  # all but surrogates


def _same_tokens(texts):
    ours = served_tokens.tokenize_array(texts)
    theirs = words.tokenize_array(texts)
    if not ours.equals(theirs):
        diff = [
            (t, a, b)
            for t, a, b in zip(texts, ours.to_pylist(), theirs.to_pylist(), strict=True)
            if a != b
        ]
        pytest.fail(f"{len(diff)} of {len(texts)} differ, the first: {diff[0]!r:.1000}")


def test_every_code_point_splits_as_words_does():
    # each code point next to others: the punctuation class (the first regex)
    _same_tokens(["".join(EVERY[i : i + 1024]) for i in range(0, len(EVERY), 1024)])


def test_every_code_point_around_apostrophes_as_words_does():
    # before and after an apostrophe: the class of the other two regexes. What the first regex
    # splits off gets spaces around it, so those two only ever see the rest next to an apostrophe
    punct = pc.match_substring_regex(pa.array(EVERY), words._REGEX[0][0])
    rest = [c for c, p in zip(EVERY, punct.to_pylist(), strict=True) if not p]
    _same_tokens(["".join(f"x'{c}'" for c in rest[i : i + 256]) for i in range(0, len(rest), 256)])


EDGES = [
    "",
    " ",
    "\t\n\v\f\r \x1c\x1d\x1e\x1f\x85\xa0\u2028\u2029\u3000",
    "'",
    "''",
    "'''",
    "''x''",
    "a''b",
    "x'",
    "'x",
    "x'\n",
    "'\n",
    "\n'",
    "x' \n",
    "don't 'quote' it's\n'",
    "Don\u2019t \u2019quote\u2019",
    "Great.<br /><br />Loved it<br/>really<BR>",
    "İstanbul ẞ ΣΑΣ ὈΔΥΣΣΕΎΣ ǅ",
    "東京😀 a\u0301b \u20dd 👍🏽 ٣½ \U00011f04\U00011f00",
    "a\u200bb\u00adc",
]

ALPHABET = [
    *"abcXYZ019 .,!?-_\"'()[]<>/\\@#$%&*",
    *["'", "\u2019", "\u2018", "<br />", "<br/>", "<BR>", "<br"],
    *["\t", "\n", "\v", "\f", "\r", "\x1c", "\x1d", "\x1e", "\x1f", "\x85", "\xa0"],
    *["\u1680", "\u2000", "\u200a", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000", "\u200b"],
    *["\u0301", "\u0308", "\u20dd", "\u0e31", "\U000e0100"],  # combining marks
    *["٣", "½", "²", "Ⅻ", "𝟙"],  # digits and other numbers
    *["😀", "👍", "🏽", "\u200d", "🎬", "\ufe0f"],
    *["東", "京", "한", "\U00020000", "\U00031350", "\U00011f04"],  # CJK, Kawi (Unicode 15)
    *["İ", "ẞ", "ß", "Σ", "ς", "ǅ", "Ω", "K", "Å", "ﬁ"],  # case mappings of their own
    *["\x00", "\x7f", "\ue000", "\U000f0000", "\U0010ffff", "\U00040000"],
]


def _random_texts(n, seed=0):
    rng = random.Random(seed)
    return [
        "".join(rng.choice(ALPHABET) for _ in range(rng.choice([0, 1, 2, 5, 20, 80])))
        for _ in range(n)
    ]


def test_edges_and_random_text_tokenize_as_words_does():
    texts = EDGES + _random_texts(3000)
    _same_tokens(texts)
    tokens = ServedEncoder(Vocabulary("word", ("<pad>", "<oov>"), 0, 1), 10).tokens(texts)
    assert tokens == [t or [] for t in words.tokenize_array(texts).to_pylist()]


def _check(texts, vocab, max_len, keep):
    ids, lengths = ServedEncoder(vocab, max_len, keep).encode(texts)
    want_ids, want_lengths = words.encode_texts(texts, vocab, max_len, keep)
    assert ids.dtype == want_ids.dtype == np.int32
    assert lengths.dtype == want_lengths.dtype == np.int32
    np.testing.assert_array_equal(ids, want_ids, strict=True)
    np.testing.assert_array_equal(lengths, want_lengths, strict=True)


REVIEWS = [
    f"Review {i}: it isn't bad!<br />Really {'great ' * (i % 9)}film's end, don't you think?"
    for i in range(300)
]


@pytest.fixture(scope="module")
def vocab():
    return words.build_vocabulary(REVIEWS + _random_texts(200), max_tokens=40, min_count=2)


@pytest.mark.parametrize("keep", ["start", "end"])
@pytest.mark.parametrize("max_len", [0, 5, 300])
@pytest.mark.parametrize("n", [1, 2, 300])  # 300: words.encode_texts itself
def test_encode_gives_what_words_encode_texts_gives(vocab, n, max_len, keep):
    for texts in (REVIEWS[-n:], _random_texts(n, seed=n)):
        _check(texts, vocab, max_len, keep)


def test_encode_edges_and_duplicate_vocabulary_tokens():
    v = Vocabulary("word", ("<pad>", "<oov>", "a", "'", "x", "a"), 0, 1)  # index_in: the first "a"
    for texts in (["a b c a"], ["b", None, "a"], [""], EDGES[:2], EDGES):
        for keep in ("start", "end"):
            _check(texts, v, 3, keep)


def test_bad_truncation_side_is_an_error():
    with pytest.raises(ValueError, match="start"):
        ServedEncoder(Vocabulary("word", ("<pad>", "<oov>"), 0, 1), 2, truncate="middle")
