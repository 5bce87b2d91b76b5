"""The schema of params.yaml.

Every stage loads the whole file through `load_params`, so an unknown key, a wrong type or an
impossible value anywhere stops it with a message that names the key and what is allowed.
Defaults here match the committed params.yaml (the 2-core CPU profile).
"""

from __future__ import annotations

import atexit
import json
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from rnnpipe.core.errors import PipelineError

# Transformer: self-attention (rnnpipe.core.attention) instead of a recurrent cell; `units` is
# then the model width, `layers` the number of attention blocks, `heads` divides `units`
CellType = Literal["SimpleRNN", "LSTM", "GRU", "Transformer"]


# Where `load_params(..., stage=...)` appends the keys a stage read, when set (tests compare
# them with the stage's `params` in dvc.yaml).
TRACE_ENV = "RNNPIPE_PARAMS_TRACE"
_read: set[str] = set()


class Section(BaseModel):
    # extra="forbid": a misspelt key is an error, not a silently ignored setting
    model_config = ConfigDict(extra="forbid", frozen=True)
    _path: str = PrivateAttr(default="")  # dotted key of this section, set by load_params
    _traced: bool = PrivateAttr(default=False)

    def __getattribute__(self, name):
        value = super().__getattribute__(name)
        if name[0] != "_" and name in type(self).model_fields and self._traced:
            if not isinstance(value, Section):
                _read.add(f"{self._path}.{name}".lstrip("."))
        return value

    def model_dump(self, **kwargs):
        if self._traced:
            _read.add(self._path)
        return super().model_dump(**kwargs)


def _trace(section: Section, path: str = "") -> None:
    section._path, section._traced = path, True
    for name in type(section).model_fields:
        value = BaseModel.__getattribute__(section, name)
        if isinstance(value, Section):
            _trace(value, f"{path}.{name}".lstrip("."))


def _write_trace(path: str, stage: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"stage": stage, "keys": sorted(_read)}) + "\n")


class DownloadParams(Section):
    url: str
    filename: str = Field(min_length=1)
    # Accepted SHA-256 checksums of the file; empty means "not checked".
    sha256: list[str] = Field(default_factory=list)
    timeout_s: float = Field(default=60.0, gt=0)
    # Folder searched before the URL; null means $RNNPIPE_DATA_MIRROR, then ../shared/data.
    mirror: str | None = None


# ---------------------------------------------------------------- IMDb


class ImdbIngestParams(Section):
    valid_fraction: float = Field(default=0.2, gt=0, lt=1)
    # valid takes whole movies (the archive's urls_*.txt), as test shares 1 of 3,581 with train
    group_by_movie: bool = True
    include_unsup: bool = False


class ImdbCheckRawParams(Section):
    test_size: int = Field(default=25_000, ge=0)
    train_valid_size: int = Field(default=25_000, ge=0)
    unsup_size: int = Field(default=50_000, ge=0)
    # |share of positives - 0.5| allowed in every labelled split
    balance_tolerance: float = Field(default=0.02, ge=0, le=0.5)
    min_text_chars: int = Field(default=10, ge=1)
    # test reviews whose text is also a train/valid review's (the real archive has a few)
    max_test_duplicates: int = Field(default=200, ge=0)


class ImdbVocabParams(Section):
    max_tokens: int = Field(default=20_000, ge=3)
    min_count: int = Field(default=2, ge=1)


class ImdbEncodeParams(Section):
    max_len: int = Field(default=400, ge=1)
    # keep the start or the end of a review longer than max_len
    truncate: Literal["start", "end"] = "end"


class ImdbCheckEncodedParams(Section):
    max_oov_rate: float = Field(default=0.05, ge=0, le=1)
    balance_tolerance: float = Field(default=0.02, ge=0, le=0.5)


class SentimentModelParams(Section):
    cell: CellType = "GRU"
    units: int = Field(default=64, ge=1)
    layers: int = Field(default=1, ge=1)
    bidirectional: bool = True
    embedding_dim: int = Field(default=128, ge=1)
    # true: the embedding starts from the embed stage's word vectors (embedding_dim must be
    # imdb.embed.dim); false: from random values
    pretrained: bool = False
    # share of whole word vectors dropped in training (the same words in every time step)
    embedding_dropout: float = Field(default=0.0, ge=0, lt=1)
    dropout: float = Field(default=0.5, ge=0, lt=1)
    # "last": the final state; "max"/"mean": pooled over the real (unpadded) steps;
    # "maxmean": both, side by side
    pooling: Literal["last", "max", "mean", "maxmean"] = "max"
    learning_rate: float = Field(default=1.5e-3, gt=0)
    # the learning rate of epoch e (from 0) is learning_rate x lr_decay^e; 1: constant
    lr_decay: float = Field(default=1.0, gt=0, le=1)
    clipnorm: float | None = Field(default=1.0, gt=0)
    # cell Transformer: attention heads, and the position table (the longest review it reads:
    # at least encode.max_len)
    heads: int = Field(default=4, ge=1)
    max_positions: int = Field(default=512, ge=1)

    @model_validator(mode="after")
    def _heads(self):
        _check_heads(self.cell, self.units, self.heads)
        return self


def _check_heads(cell: str, units: int, heads: int) -> None:
    if cell == "Transformer" and units % heads:
        raise ValueError(f"heads ({heads}) must divide units ({units}), the Transformer's width")


class ImdbTrainParams(Section):
    model: SentimentModelParams = SentimentModelParams()
    # the tune stage's best_hparams.json laid over `model` (the hparams stage resolves it)
    use_tuned: bool = True
    batch_size: int = Field(default=64, ge=1)
    epochs: int = Field(default=5, ge=1)
    patience: int = Field(default=1, ge=0)


class TuneParams(Section):
    tuner: Literal["random", "bayesian", "hyperband"] = "hyperband"
    objective: Literal["val_loss", "val_accuracy"] = "val_loss"
    # the most models the search builds
    max_trials: int = Field(default=3, ge=1)
    # epochs of a trial (hyperband: of its longest trials; it starts most at fewer)
    epochs: int = Field(default=1, ge=1)
    # the search's time budget: no trial starts after it, a running one stops at its next
    # epoch's end, and the best finished trial is the answer. null: no limit
    max_minutes: float | None = Field(default=None, gt=0)
    batch_size: int = Field(default=64, ge=1)
    # share of the training data a trial sees
    train_fraction: float = Field(default=1.0, gt=0, le=1)
    # share of the validation data a trial is scored on
    valid_fraction: float = Field(default=1.0, gt=0, le=1)
    # model key -> the values to try; a key left out keeps the model schema's default (see
    # SentimentModelParams, CharlmModelParams), one value fixes it. The keys and every value
    # are checked against the model's schema.
    space: dict[str, list] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _space(self):
        for key, values in self.space.items():
            if not values:
                raise ValueError(f"space.{key}: an empty list (give one value to fix a key, "
                                 "or leave the key out)")
        return self


def _check_space(tune: TuneParams, model: type[Section], section: str) -> None:
    """Every key of tune.space is a field of `model` and every value one it accepts."""
    for key, values in tune.space.items():
        if key not in model.model_fields:
            raise ValueError(f"space.{key}: not a key of {section} (one of "
                             f"{', '.join(model.model_fields)})")
        for value in values:
            try:
                model(**{key: value})
            except ValidationError as e:
                raise ValueError(f"space.{key}: {value!r} is refused: "
                                 f"{e.errors()[0]['msg']}") from None
    # a Transformer trial takes any pair of heads and units the space offers
    default = model()
    if "Transformer" in tune.space.get("cell", [default.cell]):
        for units in tune.space.get("units", [default.units]):
            for heads in tune.space.get("heads", [default.heads]):
                if units % heads:
                    raise ValueError(f"space.heads: {heads} does not divide space.units "
                                     f"{units} (a Transformer's width)")


class ImdbTuneParams(TuneParams):
    # reviews cut to their first seq_length tokens in trials (null: encode.max_len)
    seq_length: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _model_space(self):
        _check_space(self, SentimentModelParams, "imdb.train.model")
        return self


class CharlmTuneParams(TuneParams):
    @model_validator(mode="after")
    def _model_space(self):
        _check_space(self, CharlmModelParams, "charlm.train.model")
        return self


class CompareParams(Section):
    """The compare stage: the tuned recurrent model (the hparams stage's hparams.json) and an
    attention model, trained on the same splits with the same budget, scored on test."""

    epochs: int = Field(default=3, ge=1)
    # per model; a model still training then stops at the end of that epoch. null: no limit
    max_minutes: float | None = Field(default=None, gt=0)
    batch_size: int = Field(default=64, ge=1)
    patience: int = Field(default=1, ge=0)
    # model keys laid over hparams.json for each row; the attention row is cell Transformer
    recurrent: dict[str, Any] = Field(default_factory=dict)
    attention: dict[str, Any] = Field(default_factory=dict)

    def _check(self, model: type[Section], section: str):
        for name, keys in (("recurrent", self.recurrent), ("attention", self.attention)):
            for key, value in keys.items():
                if key not in model.model_fields:
                    raise ValueError(f"compare.{name}.{key}: not a key of {section}")
                try:
                    model(**{key: value})
                except ValidationError as e:
                    raise ValueError(f"compare.{name}.{key}: {value!r} is refused: "
                                     f"{e.errors()[0]['msg']}") from None
        if self.recurrent.get("cell") == "Transformer":
            raise ValueError("compare.recurrent.cell: the recurrent row takes a recurrent cell")
        if self.attention.get("cell", "Transformer") != "Transformer":
            raise ValueError("compare.attention.cell: the attention row is a Transformer")
        return self


class ImdbCompareParams(CompareParams):
    @model_validator(mode="after")
    def _model_keys(self):
        return self._check(SentimentModelParams, "imdb.train.model")


class CharlmCompareParams(CompareParams):
    # generation speed: characters written from the prompt at temperature 1
    prompt: str = Field(default="The island", min_length=1)
    sample_length: int = Field(default=1000, ge=1)

    @model_validator(mode="after")
    def _model_keys(self):
        return self._check(CharlmModelParams, "charlm.train.model")


class ImdbEmbedParams(Section):
    # word2vec vectors for the vocabulary's words, learnt from the training split and (with
    # use_unsup) the 50,000 unlabelled reviews; never from valid or test
    use_unsup: bool = True
    dim: int = Field(default=128, ge=1)
    window: int = Field(default=5, ge=1)
    min_count: int = Field(default=2, ge=1)
    epochs: int = Field(default=5, ge=1)
    skipgram: bool = False  # false: CBOW
    # threads; 1 gives the same vectors for the same seed, more do not (thread scheduling)
    workers: int = Field(default=1, ge=1)


class ImdbEvaluateParams(Section):
    # the decision threshold; null: the one with the best validation accuracy (never test)
    threshold: float | None = Field(default=None, gt=0, lt=1)


class ImdbBaselineParams(Section):
    ngram_max: int = Field(default=2, ge=1)
    max_features: int | None = Field(default=200_000, ge=1)
    min_df: int = Field(default=2, ge=1)
    C: float = Field(default=4.0, gt=0)


class PromoteParams(Section):
    model_name: str = Field(min_length=1)
    # the validation metric (a key of the `valid` section of metrics.json) that decides
    # promotion to the `champion` alias; test metrics never decide
    metric: str = Field(min_length=1)
    greater_is_better: bool = True


class ImdbParams(Section):
    download: DownloadParams
    ingest: ImdbIngestParams = ImdbIngestParams()
    check_raw: ImdbCheckRawParams = ImdbCheckRawParams()
    vocab: ImdbVocabParams = ImdbVocabParams()
    encode: ImdbEncodeParams = ImdbEncodeParams()
    check_encoded: ImdbCheckEncodedParams = ImdbCheckEncodedParams()
    embed: ImdbEmbedParams = ImdbEmbedParams()
    tune: ImdbTuneParams = ImdbTuneParams()
    train: ImdbTrainParams = ImdbTrainParams()
    evaluate: ImdbEvaluateParams = ImdbEvaluateParams()
    baseline: ImdbBaselineParams = ImdbBaselineParams()
    compare: ImdbCompareParams = ImdbCompareParams()
    promote: PromoteParams = PromoteParams(model_name="imdb-sentiment", metric="accuracy")

    @model_validator(mode="after")
    def _vectors_fit(self):
        # pretrained embeddings take the embed stage's vectors as they are: same size
        dim = self.embed.dim
        model = self.train.model
        if model.pretrained and model.embedding_dim != dim:
            raise ValueError(f"train.model.embedding_dim ({model.embedding_dim}) must be "
                             f"embed.dim ({dim}) when train.model.pretrained is true")
        space = self.tune.space
        default = SentimentModelParams()
        if True in space.get("pretrained", [default.pretrained]):
            dims = space.get("embedding_dim", [default.embedding_dim])
            if any(d != dim for d in dims):
                raise ValueError(f"tune.space.embedding_dim ({dims}) must be [embed.dim] "
                                 f"([{dim}]) when tune.space.pretrained may be true")
        return self

    @model_validator(mode="after")
    def _positions_fit(self):
        # a Transformer reads at most max_positions steps; reviews are encode.max_len long
        longest = self.encode.max_len
        if self.train.model.cell == "Transformer" and self.train.model.max_positions < longest:
            raise ValueError(f"train.model.max_positions ({self.train.model.max_positions}) is "
                             f"shorter than encode.max_len ({longest}), the longest review")
        default = SentimentModelParams()
        if "Transformer" in self.tune.space.get("cell", [default.cell]):
            trial = self.tune.seq_length or longest
            for n in self.tune.space.get("max_positions", [default.max_positions]):
                if n < trial:
                    raise ValueError(f"tune.space.max_positions ({n}) is shorter than the "
                                     f"reviews a trial reads ({trial}: tune.seq_length, or "
                                     "encode.max_len)")
        n = self.compare.attention.get("max_positions", default.max_positions)
        if n < longest:
            raise ValueError(f"compare.attention.max_positions ({n}) is shorter than "
                             f"encode.max_len ({longest}), the longest review")
        return self


# ---------------------------------------------------------------- character LM


class CharlmIngestParams(Section):
    # The novel runs from the first line that *equals* start_marker (the title) to the first line
    # starting with one of end_markers (the footer), searched after the licence header's line (the
    # first starting with one of header_markers) when there is one. Header and footer markers
    # ignore case; the defaults cover the 2016 edition and the current one.
    header_markers: list[str] = Field(default_factory=lambda: [
        "*** START OF THIS PROJECT GUTENBERG EBOOK",
        "*** START OF THE PROJECT GUTENBERG EBOOK",
    ])
    start_marker: str = Field(default="THE MYSTERIOUS ISLAND", min_length=1)
    end_markers: list[str] = Field(default_factory=lambda: [
        "End of the Project Gutenberg EBook of",
        "*** END OF THIS PROJECT GUTENBERG EBOOK",
        "*** END OF THE PROJECT GUTENBERG EBOOK",
    ], min_length=1)
    # Accepted SHA-256 checksums of the novel text after the cut (the UTF-8 file ingest writes),
    # whichever edition it came from; empty means "not checked".
    text_sha256: list[str] = Field(default_factory=lambda: [
        "6285069dcdd4479782d6750ebcc0bac63996618a94fce62a3280dec01a87c34c",
    ])

    @model_validator(mode="after")
    def _valid(self):
        if "" in self.header_markers or "" in self.end_markers:
            raise ValueError("an empty marker would match every line")
        bad = [h for h in self.text_sha256 if len(h) != 64 or set(h) - set("0123456789abcdef")]
        if bad:
            raise ValueError(f"text_sha256 entries must be 64 lowercase hex digits, got {bad}")
        return self


class CharlmCheckRawParams(Section):
    min_chars: int = Field(default=1_000_000, ge=1)
    max_chars: int = Field(default=1_200_000, ge=1)
    max_distinct_chars: int = Field(default=100, ge=1)
    first_line: str = "THE MYSTERIOUS ISLAND"

    @model_validator(mode="after")
    def _bounds(self):
        if self.min_chars > self.max_chars:
            raise ValueError("min_chars must not exceed max_chars")
        return self


class CharlmEncodeParams(Section):
    train_fraction: float = Field(default=0.90, gt=0, lt=1)
    valid_fraction: float = Field(default=0.05, gt=0, lt=1)
    test_fraction: float = Field(default=0.05, gt=0, lt=1)

    @model_validator(mode="after")
    def _sum_to_one(self):
        total = self.train_fraction + self.valid_fraction + self.test_fraction
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train/valid/test fractions must sum to 1, got {total:g}")
        return self


class CharlmCheckEncodedParams(Section):
    # |size of a part - its fraction x corpus length| allowed, in characters
    size_tolerance_chars: int = Field(default=1, ge=0)


class CharlmModelParams(Section):
    cell: CellType = "LSTM"
    units: int = Field(default=512, ge=1)
    layers: int = Field(default=1, ge=1)
    embedding_dim: int = Field(default=64, ge=1)
    dropout: float = Field(default=0.0, ge=0, lt=1)
    learning_rate: float = Field(default=2e-3, gt=0)
    # the learning rate of epoch e (from 0) is learning_rate x lr_decay^e; 1: constant
    lr_decay: float = Field(default=1.0, gt=0, le=1)
    clipnorm: float | None = Field(default=1.0, gt=0)
    # characters per training window; tbptt: gradients flow back seq_length steps, the state
    # carries further. A Transformer's position table has seq_length rows: its context
    seq_length: int = Field(default=50, ge=1)
    heads: int = Field(default=4, ge=1)  # cell Transformer: attention heads

    @model_validator(mode="after")
    def _heads(self):
        _check_heads(self.cell, self.units, self.heads)
        return self


class CharlmTrainParams(Section):
    model: CharlmModelParams = CharlmModelParams()
    use_tuned: bool = True
    # windows: independent windows (the textbook's way); tbptt: stateful contiguous streams
    feed: Literal["windows", "tbptt"] = "tbptt"
    batch_size: int = Field(default=64, ge=1)
    epochs: int = Field(default=6, ge=1)
    patience: int = Field(default=1, ge=0)


class CharlmEvaluateParams(Section):
    prompt: str = Field(default="The island", min_length=1)
    sample_length: int = Field(default=500, ge=1)
    temperatures: list[float] = Field(default_factory=lambda: [0.5, 1.0, 1.5], min_length=1)


class CharlmParams(Section):
    download: DownloadParams
    ingest: CharlmIngestParams = CharlmIngestParams()
    check_raw: CharlmCheckRawParams = CharlmCheckRawParams()
    encode: CharlmEncodeParams = CharlmEncodeParams()
    check_encoded: CharlmCheckEncodedParams = CharlmCheckEncodedParams()
    tune: CharlmTuneParams = CharlmTuneParams()
    train: CharlmTrainParams = CharlmTrainParams()
    evaluate: CharlmEvaluateParams = CharlmEvaluateParams()
    compare: CharlmCompareParams = CharlmCompareParams()
    promote: PromoteParams = PromoteParams(
        model_name="mysterious-island-charlm", metric="loss", greater_is_better=False
    )


class Params(Section):
    seed: int = Field(default=42, ge=0)
    imdb: ImdbParams
    charlm: CharlmParams


def _format_error(err: ValidationError, path: Path) -> str:
    lines = [f"{path}: {err.error_count()} invalid parameter(s)"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling; see params.yaml and src/rnnpipe/core/params.py)"
        if e["type"] == "value_error":  # a rule across keys: the message names them
            lines.append(f"  {key}: {msg.removeprefix('Value error, ')}")
        else:
            lines.append(f"  {key}: {msg} (got {e.get('input')!r})")
    return "\n".join(lines)


def load_params(path: str | Path = "params.yaml", stage: str | None = None) -> Params:
    """The validated params. With `stage` given and $RNNPIPE_PARAMS_TRACE set, the keys the
    stage reads are appended to that file when the process ends."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PipelineError(f"params file not found: {path}") from None
    except yaml.YAMLError as e:
        raise PipelineError(f"{path} is not valid YAML: {e}") from None
    try:
        params = Params.model_validate(raw or {})
    except ValidationError as e:
        raise PipelineError(_format_error(e, path)) from None
    if stage and os.environ.get(TRACE_ENV):
        _trace(params)
        atexit.register(_write_trace, os.environ[TRACE_ENV], stage)
    return params
