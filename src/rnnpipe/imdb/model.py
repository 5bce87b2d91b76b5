"""The sentiment model: a many-to-one RNN (or, with cell Transformer, self-attention) over word
ids that says how likely a review is positive.

Pure Keras 3, so it runs on any backend. LSTM and GRU keep the settings under which Keras uses
the fused cuDNN kernel on a GPU (default activations, no recurrent_dropout, GRU reset_after).
"""

from __future__ import annotations

import keras
from keras import layers, ops

from rnnpipe.core.attention import encoder
from rnnpipe.core.errors import ModelConfigError, PipelineError

CELLS = {"SimpleRNN": layers.SimpleRNN, "LSTM": layers.LSTM, "GRU": layers.GRU}


@keras.saving.register_keras_serializable(package="rnnpipe")
def side_agreement(y_true, y_pred):
    """Keras' binary accuracy for labels that may be soft: whether label and prediction fall on
    the same side of 0.5. The student learns from a teacher's probabilities, which BinaryAccuracy
    compares with 0 or 1 exactly (it showed the student at 0.27 for 0.93); hard labels give the
    same value as BinaryAccuracy."""
    return keras.metrics.binary_accuracy(ops.cast(y_true > 0.5, y_pred.dtype), y_pred)


@keras.saving.register_keras_serializable(package="rnnpipe")
class MaskedPooling(layers.Layer):
    """Max or mean over time of the steps the mask marks as real (padding left out), or the
    last real step."""

    def __init__(self, mode: str = "max", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("max", "mean", "last"):
            raise ModelConfigError(f"pooling mode must be 'max', 'mean' or 'last', got {mode!r}")
        self.mode = mode
        self.supports_masking = True

    def call(self, x, mask=None):
        if mask is None:
            return {"max": ops.max, "mean": ops.mean}.get(self.mode, lambda x, axis: x[:, -1])(
                x, axis=1
            )
        m = ops.cast(ops.expand_dims(mask, -1), x.dtype)
        if self.mode == "last":
            # the last real step wherever the padding is: the step with the highest position
            # among the real ones
            steps = ops.cast(ops.arange(ops.shape(x)[1]), x.dtype)
            last = ops.argmax(m[..., 0] * (steps + 1.0), axis=1)
            return ops.sum(
                x * ops.expand_dims(ops.one_hot(last, ops.shape(x)[1], dtype=x.dtype), -1), axis=1
            )
        if self.mode == "max":
            # padded steps get a very low value, so they never win the max; a review with
            # no real step at all pools to zeros
            pooled = ops.max(x + (1.0 - m) * -1e9, axis=1)
            return pooled * ops.cast(ops.sum(m, axis=1) > 0, x.dtype)
        return ops.sum(x * m, axis=1) / ops.maximum(ops.sum(m, axis=1), 1.0)

    def compute_mask(self, inputs, mask=None):
        return None  # one vector per review: no time axis left to mask

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def build_sentiment_model(hp: dict, vocab_size: int, vectors=None) -> keras.Model:
    """hp: the fields of params.SentimentModelParams. Input: int ids [batch, time], 0 = pad.
    Output: probability of a positive review [batch, 1]. With hp["pretrained"], `vectors`
    ([vocab_size, embedding_dim], the embed stage's) are the embedding's starting values."""
    ids = keras.Input(shape=(None,), dtype="int32", name="ids")
    embedding = layers.Embedding(vocab_size, hp["embedding_dim"], mask_zero=True, name="embedding")
    x = embedding(ids)
    if hp.get("embedding_dropout"):
        # drops whole word vectors (the same ones at every step), not single numbers
        x = layers.SpatialDropout1D(hp["embedding_dropout"], name="embedding_dropout")(x)
    if hp["cell"] == "Transformer":
        # attention reads the review both ways at once: `bidirectional` means nothing here
        x = encoder(
            x,
            width=hp["units"],
            heads=hp["heads"],
            n_layers=hp["layers"],
            dropout=hp["dropout"],
            max_positions=hp["max_positions"],
            causal=False,
        )
        if hp["pooling"] == "last":
            x = MaskedPooling("last", name="last_pool")(x)
    else:
        x = _recurrent(x, hp)
    if hp["pooling"] == "maxmean":
        x = layers.Concatenate(name="maxmean_pool")(
            [MaskedPooling("max", name="max_pool")(x), MaskedPooling("mean", name="mean_pool")(x)]
        )
    elif hp["pooling"] != "last":
        x = MaskedPooling(hp["pooling"], name=f"{hp['pooling']}_pool")(x)
    x = layers.Dropout(hp["dropout"])(x)
    out = layers.Dense(1, activation="sigmoid", name="positive")(x)
    model = keras.Model(ids, out, name="sentiment")
    if hp.get("pretrained"):
        if vectors is None:
            raise ModelConfigError("pretrained is true but no word vectors were given")
        if tuple(vectors.shape) != (vocab_size, hp["embedding_dim"]):
            raise ModelConfigError(
                f"word vectors of shape {tuple(vectors.shape)} do not fit the "
                f"vocabulary ({vocab_size}) and embedding_dim "
                f"({hp['embedding_dim']}): embedding_dim must be the vectors' size"
            )
        embedding.set_weights([vectors])
    model.compile(
        optimizer=keras.optimizers.Adam(hp["learning_rate"], clipnorm=hp["clipnorm"]),
        loss="binary_crossentropy",
        # an object, not "accuracy": its variables exist before fit (see below)
        metrics=[keras.metrics.MeanMetricWrapper(side_agreement, name="accuracy")],
    )
    # On TensorFlow, variables first made inside the train step (Adam's slots, a metric named
    # by a string) make tf.function trace the step twice: a third of a short fit's time.
    model.optimizer.build(model.trainable_variables)
    return model


def _recurrent(x, hp: dict):
    cell = CELLS[hp["cell"]]
    for i in range(hp["layers"]):
        # every layer but the last returns the sequence; so does the last unless we keep
        # only its final state ("last" pooling)
        seq = i < hp["layers"] - 1 or hp["pooling"] != "last"
        rnn = cell(hp["units"], return_sequences=seq, name=f"{hp['cell'].lower()}_{i}")
        x = layers.Bidirectional(rnn, name=f"bi_{i}")(x) if hp["bidirectional"] else rnn(x)
    return x


def read_vectors(path, vocab_size: int):
    """The embed stage's word vectors [vocab_size, dim] (a .npy file, read without pickle)."""
    import numpy as np

    try:
        vectors = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise PipelineError(f"cannot read word vectors {path}: {e}") from None
    if vectors.ndim != 2 or len(vectors) != vocab_size:
        raise PipelineError(
            f"word vectors {path} have shape {vectors.shape}, not "
            f"[{vocab_size} (the vocabulary), dim]: rerun the embed stage"
        )
    return vectors.astype("float32")


def load_model(path) -> keras.Model:
    """A saved sentiment model (MaskedPooling, defined here, is registered by this module)."""
    try:
        return keras.models.load_model(path)
    except (OSError, ValueError) as e:
        raise PipelineError(f"cannot load {path}: {e}") from None


def predict_proba(model: keras.Model, ids, lengths, batch_size: int = 256):
    """Probabilities [n] in row order. Rows are batched by length, each batch cut to its longest
    review, so short reviews do not pay for the padding of long ones."""
    import numpy as np

    order = np.argsort(lengths, kind="stable")
    out = np.zeros(len(order), dtype="float32")
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        width = max(int(lengths[rows].max()), 1)
        out[rows] = np.asarray(model.predict_on_batch(ids[rows, :width])).reshape(-1)
    return out
