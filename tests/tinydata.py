"""Tiny data in the official formats, built by the tests (never copies of the real data sets)."""

from __future__ import annotations

import io
import random
import tarfile
from pathlib import Path

import yaml

POS_WORDS = "wonderful great brilliant moving superb loved best beautiful fun charming".split()
NEG_WORDS = "awful boring terrible worst waste dull bad stupid poor annoying".split()
FILLER = (
    "the film movie plot actors story was and it a of this I to in is that with "
    "but don't isn't characters scene end"
).split()


def review(rng: random.Random, positive: bool, n_words: int = 40) -> str:
    """A review whose sentiment words say its label, with an HTML break like the real ones."""
    words = [rng.choice(FILLER) for _ in range(n_words)]
    for i in rng.sample(range(n_words), k=n_words // 5):
        words[i] = rng.choice(POS_WORDS if positive else NEG_WORDS)
    half = n_words // 2
    return " ".join(words[:half]) + ".<br /><br />" + " ".join(words[half:]) + "!"


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def movie_url(movie: int) -> str:
    return f"http://www.imdb.com/title/tt{movie:07d}/usercomments"


def imdb_members(
    n_per_folder: int = 20, n_unsup: int = 10, seed: int = 0, reviews_per_movie: int = 2
) -> dict[str, bytes]:
    """name -> bytes of a small aclImdb archive with the official layout: ids restart at 0 in
    every folder, and urls_<folder>.txt gives each review's movie (line i for review i), a
    movie having `reviews_per_movie` reviews; train and test share no movie."""
    rng = random.Random(seed)
    members = {"aclImdb/README": b"tiny test copy\n", "aclImdb/imdb.vocab": b"the\nfilm\n"}
    next_movie = 1
    for split in ("train", "test"):
        for folder, positive in (("pos", True), ("neg", False)):
            urls = []
            for i in range(n_per_folder):
                rating = rng.choice([7, 8, 9, 10] if positive else [1, 2, 3, 4])
                text = review(rng, positive).encode()
                members[f"aclImdb/{split}/{folder}/{i}_{rating}.txt"] = text
                urls.append(movie_url(next_movie + i // reviews_per_movie))
            next_movie += -(-n_per_folder // reviews_per_movie)
            members[f"aclImdb/{split}/urls_{folder}.txt"] = ("\n".join(urls) + "\n").encode()
    urls = []
    for i in range(n_unsup):
        members[f"aclImdb/train/unsup/{i}_0.txt"] = review(rng, rng.random() < 0.5).encode()
        urls.append(movie_url(next_movie + i))
    members["aclImdb/train/urls_unsup.txt"] = ("\n".join(urls) + "\n").encode()
    return members


def write_imdb_archive(path: Path, members: dict[str, bytes] | None = None, **kwargs) -> Path:
    """Write `members` (default: imdb_members(**kwargs)) as a tar.gz at `path`."""
    members = imdb_members(**kwargs) if members is None else members
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name in sorted(members):
            _add(tar, name, members[name])
    return path


NOVEL_WORDS = (
    "the island engineer sailors cyrus harding pencroft herbert neb spilett balloon "
    "sea rock cave fire wood granite house beach forest north south wind storm "
    "captain nemo said he they were was and of to in on at"
).split()


def novel_body(n_chars: int = 20_000, seed: int = 0) -> str:
    """Novel-like English text, after the title lines."""
    rng = random.Random(seed)
    out, size = [], 0
    while size < n_chars:
        words = [rng.choice(NOVEL_WORDS) for _ in range(rng.randint(6, 18))]
        sentence = " ".join(words).capitalize() + rng.choice([".", ".", "!", "?"])
        out.append(sentence)
        size += len(sentence) + 1
        if rng.random() < 0.15:
            out.append("\n\n")
    return " ".join(out).replace(" \n\n ", "\n\n")


# The licence header and footer of the 2016 edition (the mirror's file) and of the one served
# now (made-up wording around the real marker lines).
GUTENBERG_LAYOUTS = {
    "2016": (
        "The Project Gutenberg EBook of The Mysterious Island, by Jules Verne\n\n"
        "This eBook is for the use of anyone anywhere at no cost.\n\n"
        "Title: The Mysterious Island\n\nLast Updated: October 13, 2016\n\n"
        "*** START OF THIS PROJECT GUTENBERG EBOOK THE MYSTERIOUS ISLAND ***\n\n"
        "Produced by a tiny test\n\n\n\n",
        "End of the Project Gutenberg EBook of The Mysterious Island, by Jules Verne\n\n"
        "*** END OF THIS PROJECT GUTENBERG EBOOK THE MYSTERIOUS ISLAND ***\n\n"
        "***** This file should be named 1268-0.txt or 1268-0.zip *****\n",
    ),
    "current": (
        "The Project Gutenberg eBook of The Mysterious Island\n\n"
        "This ebook is for the use of anyone anywhere in the United States at no cost.\n\n"
        "Title: The Mysterious Island\n\nAuthor: Jules Verne\n\n"
        "Release date: April 1, 1998 [eBook #1268]\n\n"
        "Credits: a tiny test\n\n\n"
        "*** START OF THE PROJECT GUTENBERG EBOOK THE MYSTERIOUS ISLAND ***\n\n\n\n",
        "*** END OF THE PROJECT GUTENBERG EBOOK THE MYSTERIOUS ISLAND ***\n\n\n\n"
        "Updated editions will replace the previous one.\n",
    ),
}


def gutenberg_text(
    body: str | None = None, *, layout: str = "2016", header: bool = True, footer: bool = True
) -> str:
    """A Project Gutenberg style file (CRLF line ends, licence header and footer) in the
    `layout` of GUTENBERG_LAYOUTS."""
    body = novel_body() if body is None else body
    head, foot = GUTENBERG_LAYOUTS[layout]
    parts = [head] if header else []
    parts.append("THE MYSTERIOUS ISLAND\n\nby Jules Verne\n\n1874\n\n\n" + body + "\n\n\n")
    if footer:
        parts.append(foot)
    return "".join(parts).replace("\n", "\r\n")


def write_gutenberg(path: Path, text: str | None = None, **kwargs) -> Path:
    """Write the Gutenberg-style file with a UTF-8 byte-order mark, as the real one has."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = gutenberg_text(**kwargs) if text is None else text
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    return path


# a char LM small enough to build, save and score in a second (registry and packaging tests)
SMALL_CHAR_LM = {
    "embedding_dim": 4,
    "cell": "GRU",
    "units": 8,
    "layers": 1,
    "dropout": 0.0,
    "learning_rate": 1e-3,
    "clipnorm": 1.0,
    "seq_length": 16,
}


def sentiment_params(**keys):
    """A sentiment model's params: the tiny profile's imdb.train.model with `keys` laid over
    it (the schema has no defaults for model keys)."""
    from rnnpipe.imdb.params import SentimentModelParams

    raw = yaml.safe_load(_TINY_PARAMS.read_text())["imdb"]["train"]["model"]
    return SentimentModelParams(**(raw | keys))


def charlm_params(**keys):
    """A char LM's params: the tiny profile's charlm.train.model with `keys` laid over it."""
    from rnnpipe.charlm.params import CharlmModelParams

    raw = yaml.safe_load(_TINY_PARAMS.read_text())["charlm"]["train"]["model"]
    return CharlmModelParams(**(raw | keys))


_TINY_PARAMS = Path(__file__).with_name("params_tiny.yaml")
