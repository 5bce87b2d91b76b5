"""The schema of params.yaml's `imdb` section (`SCHEMA`): an edit here reruns only imdb stages.

The model keys (imdb.train.model) have no defaults: params.yaml gives every one, and the search
takes the keys it does not search from there. Other defaults equal the committed params.yaml.
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


class ImdbIngestParams(Section):
    valid_fraction: float = Field(default=0.2, gt=0, lt=1)
    # valid takes whole movies (the archive's urls_*.txt), as test shares 1 of 3,581 with train
    group_by_movie: bool = True
    include_unsup: bool = True


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
    # no defaults: imdb.train.model in params.yaml gives every key
    cell: CellType
    units: int = Field(ge=1)
    layers: int = Field(ge=1)
    bidirectional: bool
    embedding_dim: int = Field(ge=1)
    # true: the embedding starts from the embed stage's word vectors (embedding_dim must be
    # imdb.embed.dim); false: from random values
    pretrained: bool
    # share of whole word vectors dropped in training (the same words in every time step)
    embedding_dropout: float = Field(ge=0, lt=1)
    dropout: float = Field(ge=0, lt=1)
    # "last": the final state; "max"/"mean": pooled over the real (unpadded) steps;
    # "maxmean": both, side by side
    pooling: Literal["last", "max", "mean", "maxmean"]
    learning_rate: float = Field(gt=0)
    # the learning rate of epoch e (from 0) is learning_rate x lr_decay^e; 1: constant
    lr_decay: float = Field(gt=0, le=1)
    clipnorm: float | None = Field(gt=0)
    # cell Transformer: attention heads, and the position table (the longest review it reads:
    # at least encode.max_len)
    heads: int = Field(ge=1)
    max_positions: int = Field(ge=1)

    @model_validator(mode="after")
    def _heads(self):
        check_heads(self.cell, self.units, self.heads)
        return self


class ImdbTrainParams(Section):
    model: SentimentModelParams
    # the tune stage's best_hparams.json laid over `model` (the hparams stage resolves it)
    use_tuned: bool = True
    batch_size: int = Field(default=64, ge=1)
    epochs: int = Field(default=4, ge=1)
    patience: int = Field(default=1, ge=0)
    # each epoch, about this fraction of the training reviews is cut to a random window of
    # crop_min_tokens or more (rnnpipe.imdb.inputs.dataset): practice on short texts
    crop: float = Field(default=0.0, ge=0.0, le=1.0)
    crop_min_tokens: int = Field(default=5, ge=1)


class ImdbTuneParams(TuneParams):
    # reviews cut to their first seq_length tokens in trials (null: encode.max_len)
    seq_length: int | None = Field(default=200, ge=1)


class ImdbCompareParams(CompareParams):
    pass


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
    # the decision threshold. 0.5: the classes are balanced; null: the one with the best
    # validation accuracy (never test), which suits texts as long as the validation reviews
    # (benchmarks/README.md, "Short texts": 0.362 there cost up to 5 points on short texts)
    threshold: float | None = Field(default=0.5, gt=0, lt=1)


class ImdbBaselineParams(Section):
    ngram_max: int = Field(default=2, ge=1)
    max_features: int | None = Field(default=200_000, ge=1)
    min_df: int = Field(default=2, ge=1)
    C: float = Field(default=4.0, gt=0)


class ImdbNbsvmParams(Section):
    # NBSVM (Wang & Manning 2012): binary word 1..ngram_max-grams seen in min_df training
    # reviews, each scaled by its naive Bayes log-count ratio, then logistic regression
    ngram_max: int = Field(default=3, ge=1)
    min_df: int = Field(default=2, ge=1)
    C: float = Field(default=0.3, gt=0)


class ImdbStudentParams(Section):
    # self-training: train's model (with an NBSVM model fit on the training reviews, teacher
    # stack) labels unsup_reviews of the unlabelled reviews with its probabilities (the teach
    # stage), and the student, a new model of train's hyperparameters and schedule, learns from
    # the training reviews and those soft labels together (the student stage): the model
    # evaluated and served
    teacher: Literal["rnn", "nbsvm", "stack"] = "stack"
    nbsvm: ImdbNbsvmParams = ImdbNbsvmParams()
    # a random subset of the unlabelled reviews (seeded), or null: all of them
    unsup_reviews: int | None = Field(default=None, ge=1)
    # each of those reviews also gives one window of its words, labelled by the teacher itself
    # (length log-uniform from window_min_words to the review's): short texts for the student
    windows: bool = False
    window_min_words: int = Field(default=4, ge=1)
    epochs: int = Field(default=4, ge=1)


class ImdbParams(Section):
    download: DownloadParams
    ingest: ImdbIngestParams = ImdbIngestParams()
    check_raw: ImdbCheckRawParams = ImdbCheckRawParams()
    vocab: ImdbVocabParams = ImdbVocabParams()
    encode: ImdbEncodeParams = ImdbEncodeParams()
    check_encoded: ImdbCheckEncodedParams = ImdbCheckEncodedParams()
    embed: ImdbEmbedParams = ImdbEmbedParams()
    tune: ImdbTuneParams
    train: ImdbTrainParams
    student: ImdbStudentParams = ImdbStudentParams()
    evaluate: ImdbEvaluateParams = ImdbEvaluateParams()
    baseline: ImdbBaselineParams = ImdbBaselineParams()
    compare: ImdbCompareParams
    promote: PromoteParams

    @model_validator(mode="after")
    def _model_keys(self):
        check_space(self.tune, self.train.model, "imdb.train.model")
        check_compare(self.compare, self.train.model, "imdb.train.model")
        return self

    @model_validator(mode="after")
    def _vectors_fit(self):
        # pretrained embeddings take the embed stage's vectors as they are: same size
        dim = self.embed.dim
        model = self.train.model
        if model.pretrained and model.embedding_dim != dim:
            raise ValueError(
                f"train.model.embedding_dim ({model.embedding_dim}) must be "
                f"embed.dim ({dim}) when train.model.pretrained is true"
            )
        space = self.tune.space
        if True in space.get("pretrained", [model.pretrained]):
            dims = space.get("embedding_dim", [model.embedding_dim])
            if any(d != dim for d in dims):
                raise ValueError(
                    f"tune.space.embedding_dim ({dims}) must be [embed.dim] "
                    f"([{dim}]) when tune.space.pretrained may be true"
                )
        return self

    @model_validator(mode="after")
    def _positions_fit(self):
        # a Transformer reads at most max_positions steps; reviews are encode.max_len long
        longest = self.encode.max_len
        model = self.train.model
        if model.cell == "Transformer" and model.max_positions < longest:
            raise ValueError(
                f"train.model.max_positions ({model.max_positions}) is "
                f"shorter than encode.max_len ({longest}), the longest review"
            )
        if "Transformer" in self.tune.space.get("cell", [model.cell]):
            trial = self.tune.seq_length or longest
            for n in self.tune.space.get("max_positions", [model.max_positions]):
                if n < trial:
                    raise ValueError(
                        f"tune.space.max_positions ({n}) is shorter than the "
                        f"reviews a trial reads ({trial}: tune.seq_length, or "
                        "encode.max_len)"
                    )
        n = self.compare.attention.get("max_positions", model.max_positions)
        if n < longest:
            raise ValueError(
                f"compare.attention.max_positions ({n}) is shorter than "
                f"encode.max_len ({longest}), the longest review"
            )
        return self


SCHEMA = ImdbParams
