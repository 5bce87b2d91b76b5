"""The schema of params.yaml's `charlm` section (`SCHEMA`): an edit here reruns only charlm
stages.

The model keys (charlm.train.model) have no defaults: params.yaml gives every one, and the
search takes the keys it does not search from there. Other defaults equal the committed
params.yaml.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from rnnpipe.core.params import (
    CellType,
    CompareParams,
    DownloadParams,
    PromoteParams,
    Section,
    TuneParams,
    check_compare,
    check_heads,
    check_space,
)


class CharlmIngestParams(Section):
    # The novel runs from the first line that *equals* start_marker (the title) to the first line
    # starting with one of end_markers (the footer), searched after the licence header's line (the
    # first starting with one of header_markers) when there is one. Header and footer markers
    # ignore case; the defaults cover the 2016 edition and the current one.
    header_markers: list[str] = Field(
        default_factory=lambda: [
            "*** START OF THIS PROJECT GUTENBERG EBOOK",
            "*** START OF THE PROJECT GUTENBERG EBOOK",
        ]
    )
    start_marker: str = Field(default="THE MYSTERIOUS ISLAND", min_length=1)
    end_markers: list[str] = Field(
        default_factory=lambda: [
            "End of the Project Gutenberg EBook of",
            "*** END OF THIS PROJECT GUTENBERG EBOOK",
            "*** END OF THE PROJECT GUTENBERG EBOOK",
        ],
        min_length=1,
    )
    # Accepted SHA-256 checksums of the novel text after the cut (the UTF-8 file ingest writes),
    # whichever edition it came from; empty means "not checked".
    text_sha256: list[str] = Field(
        default_factory=lambda: [
            "6285069dcdd4479782d6750ebcc0bac63996618a94fce62a3280dec01a87c34c",
        ]
    )

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
    # no defaults: charlm.train.model in params.yaml gives every key
    cell: CellType
    units: int = Field(ge=1)
    layers: int = Field(ge=1)
    embedding_dim: int = Field(ge=1)
    dropout: float = Field(ge=0, lt=1)
    learning_rate: float = Field(gt=0)
    # the learning rate of epoch e (from 0) is learning_rate x lr_decay^e; 1: constant
    lr_decay: float = Field(gt=0, le=1)
    clipnorm: float | None = Field(gt=0)
    # characters per training window; tbptt: gradients flow back seq_length steps, the state
    # carries further. A Transformer's position table has seq_length rows: its context
    seq_length: int = Field(ge=1)
    heads: int = Field(ge=1)  # cell Transformer: attention heads
    # each step, weights shrink by learning_rate x weight_decay of themselves, apart from the
    # gradient (AdamW's decay; not biases or layer norms); 0: plain Adam
    weight_decay: float = Field(ge=0)

    @model_validator(mode="after")
    def _heads(self):
        check_heads(self.cell, self.units, self.heads)
        return self


class CharlmTrainParams(Section):
    model: CharlmModelParams
    use_tuned: bool = True
    # windows: independent windows (the textbook's way); tbptt: stateful contiguous streams
    feed: Literal["windows", "tbptt"] = "tbptt"
    batch_size: int = Field(default=128, ge=1)
    epochs: int = Field(default=10, ge=1)
    patience: int = Field(default=1, ge=0)
    # share of the first epoch over which the learning rate rises linearly to its value
    # (batch b of n gets rate x (b + 1) / n); 0: none. Train and both compare rows use it
    warmup: float = Field(default=0.5, ge=0, le=1)


class CharlmEvaluateParams(Section):
    prompt: str = Field(default="The island", min_length=1)
    sample_length: int = Field(default=500, ge=1)
    temperatures: list[float] = Field(default_factory=lambda: [0.5, 1.0, 1.5], min_length=1)


class CharlmTuneParams(TuneParams):
    batch_size: int = Field(default=128, ge=1)  # train's


class CharlmCompareParams(CompareParams):
    batch_size: int = Field(default=128, ge=1)  # train's: the recurrent row is train's epochs
    # generation speed: characters written from the prompt at temperature 1
    prompt: str = Field(default="The island", min_length=1)
    sample_length: int = Field(default=1000, ge=1)


class CharlmParams(Section):
    download: DownloadParams
    ingest: CharlmIngestParams = CharlmIngestParams()
    check_raw: CharlmCheckRawParams = CharlmCheckRawParams()
    encode: CharlmEncodeParams = CharlmEncodeParams()
    check_encoded: CharlmCheckEncodedParams = CharlmCheckEncodedParams()
    tune: CharlmTuneParams
    train: CharlmTrainParams
    evaluate: CharlmEvaluateParams = CharlmEvaluateParams()
    compare: CharlmCompareParams
    promote: PromoteParams

    @model_validator(mode="after")
    def _model_keys(self):
        check_space(self.tune, self.train.model, "charlm.train.model")
        check_compare(self.compare, self.train.model, "charlm.train.model")
        return self


SCHEMA = CharlmParams
