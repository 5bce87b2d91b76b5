"""The character-level language model and the two ways of feeding it text.

Pure Keras 3: runs on TensorFlow, JAX or PyTorch.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from rnnpipe.core.attention import encoder
from rnnpipe.core.errors import ModelConfigError, PipelineError

CELLS = {"SimpleRNN": keras.layers.SimpleRNN, "LSTM": keras.layers.LSTM, "GRU": keras.layers.GRU}


def build_char_lm(
    hp: dict, vocab_size: int, *, stateful: bool = False, batch_size: int | None = None
) -> keras.Model:
    """Embedding -> `layers` recurrent layers (dropout between them) -> Dense logits; or, with
    cell Transformer, Embedding -> causal self-attention (rnnpipe.core.attention) -> logits.

    hp: the fields of params.CharlmModelParams. Input ids [batch, time] -> logits
    [batch, time, vocab]. A stateful model needs a fixed batch size: its state carries from
    one call to the next until its RNN layers are reset (see reset_states). A Transformer has
    no state to carry: its context is its position table, seq_length characters.
    """
    if stateful and not batch_size:
        raise ModelConfigError("a stateful model needs batch_size")
    inputs = keras.Input(
        batch_shape=(batch_size if stateful else None, None), dtype="int32", name="ids"
    )
    x = keras.layers.Embedding(vocab_size, hp["embedding_dim"], name="embedding")(inputs)
    if hp["cell"] == "Transformer":
        x = encoder(
            x,
            width=hp["units"],
            heads=hp["heads"],
            n_layers=hp["layers"],
            dropout=hp["dropout"],
            max_positions=hp["seq_length"],
            causal=True,
        )
    else:
        for i in range(hp["layers"]):
            if i > 0 and hp["dropout"] > 0:
                x = keras.layers.Dropout(hp["dropout"], name=f"dropout_{i}")(x)
            # defaults (tanh, sigmoid, no recurrent dropout, unroll=False, GRU reset_after=True)
            # keep the cuDNN kernels usable on a GPU
            x = CELLS[hp["cell"]](
                hp["units"], return_sequences=True, stateful=stateful, name=f"rnn_{i}"
            )(x)
    if hp["dropout"] > 0:
        x = keras.layers.Dropout(hp["dropout"], name="dropout_out")(x)
    logits = keras.layers.Dense(vocab_size, name="logits")(x)
    model = keras.Model(inputs, logits, name="char_lm")
    # weight decay decoupled from the gradient (AdamW's); biases and layer norms' scales and
    # offsets keep theirs. 0: plain Adam, as for hparams.json files older than the key
    decay = hp.get("weight_decay", 0.0)
    optimizer = keras.optimizers.Adam(
        hp["learning_rate"], clipnorm=hp["clipnorm"], weight_decay=decay or None
    )
    if decay:
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    # Adam's slots made now, not inside the first train step: on TensorFlow that would make
    # tf.function trace the step twice
    model.optimizer.build(model.trainable_variables)
    return model


def bits(logs: dict) -> dict:
    """Losses in nats -> bits per character (loss -> bits_per_char, val_loss -> val_...)."""
    return {
        f"{k[:-4]}bits_per_char": v / math.log(2) for k, v in logs.items() if k.endswith("loss")
    }


def reset_states(model: keras.Model) -> None:
    """Zero the carried state of every stateful RNN layer."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.RNN) and layer.stateful:
            layer.reset_state()


class ResetStates(keras.callbacks.Callback):
    """TBPTT: start every epoch, and every validation, from a zero state."""

    def on_epoch_begin(self, epoch, logs=None):
        reset_states(self.model)

    def on_test_begin(self, logs=None):
        reset_states(self.model)


def window_batches(ids: np.ndarray, seq_length: int) -> tuple[np.ndarray, np.ndarray]:
    """The textbook's feed: the text cut into independent chunks of seq_length + 1 characters;
    x = chunk[:-1], y = chunk[1:]. Shuffle them when training."""
    n = (len(ids) - 1) // seq_length
    if n < 1:
        raise PipelineError(
            f"text of {len(ids)} characters is shorter than one window of {seq_length + 1}"
        )
    x = ids[: n * seq_length].reshape(n, seq_length)
    y = ids[1 : n * seq_length + 1].reshape(n, seq_length)
    return x, y


def stream_batches(
    ids: np.ndarray, batch_size: int, seq_length: int
) -> tuple[np.ndarray, np.ndarray]:
    """Truncated BPTT feed: the text cut into `batch_size` contiguous streams; batch k holds
    window k of every stream, so row i of batch k+1 continues row i of batch k. Returns x, y
    of shape [n_batches * batch_size, seq_length], to be fed in order (shuffle=False) with that
    batch size to a stateful model."""
    stream_len = len(ids) // batch_size
    n = (stream_len - 1) // seq_length
    if n < 1:
        raise PipelineError(
            f"text of {len(ids)} characters is too short for {batch_size} "
            f"streams of at least {seq_length + 1} characters"
        )
    streams = ids[: batch_size * stream_len].reshape(batch_size, stream_len)
    x = streams[:, : n * seq_length].reshape(batch_size, n, seq_length)
    y = streams[:, 1 : n * seq_length + 1].reshape(batch_size, n, seq_length)
    # [stream, window, t] -> [window, stream, t]: consecutive batches are consecutive windows
    return (
        x.transpose(1, 0, 2).reshape(-1, seq_length),
        y.transpose(1, 0, 2).reshape(-1, seq_length),
    )
