"""Self-attention beside the recurrent cells: a small Transformer encoder from Keras 3 layers
(pure Keras: any backend), and its forward pass in NumPy with a key/value cache for generation.

The encoder (pre-norm, as in GPT-2):
    x = token vectors (projected to `width` if their size differs) + learnt position vectors
    `layers` x [x += Dropout(MultiHeadAttention(LayerNorm(x))); x += Dropout(FFN(LayerNorm(x)))]
    LayerNorm(x)
The Keras mask of padding (Embedding(mask_zero=True)) flows through it: attention never reads a
padded step. `causal=True` lets each step read only itself and earlier steps.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from rnnpipe.core.errors import ModelConfigError

FF_MULT = 4  # the feed-forward layer is 4 x the model width, as in the original Transformer


@keras.saving.register_keras_serializable(package="rnnpipe")
class PositionEmbedding(layers.Layer):
    """Adds a learnt vector for each position 0, 1, ... to a sequence [batch, time, width];
    `max_positions` rows, so time must not exceed it. Keeps the input's mask."""

    def __init__(self, max_positions: int, **kwargs):
        super().__init__(**kwargs)
        self.max_positions = max_positions
        self.supports_masking = True

    def build(self, input_shape):
        if input_shape[1] is not None and input_shape[1] > self.max_positions:
            raise ValueError(f"sequences of {input_shape[1]} steps do not fit a position table "
                             f"of {self.max_positions}")
        self.table = self.add_weight(
            shape=(self.max_positions, input_shape[-1]), name="table",
            initializer=keras.initializers.RandomNormal(stddev=0.02))

    def call(self, x):
        steps = ops.shape(x)[1]
        return x + ops.expand_dims(ops.slice(self.table, (0, 0), (steps, ops.shape(x)[2])), 0)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "max_positions": self.max_positions}


def check_shape(width: int, heads: int) -> None:
    if heads < 1 or width % heads:
        raise ModelConfigError(f"heads ({heads}) must divide the model width, units ({width})")


def encoder(x, *, width: int, heads: int, n_layers: int, dropout: float, max_positions: int,
            causal: bool):
    """The Transformer encoder on token vectors x [batch, time, dim] -> [batch, time, width]."""
    check_shape(width, heads)
    if x.shape[-1] != width:
        x = layers.Dense(width, name="to_width")(x)
    x = PositionEmbedding(max_positions, name="positions")(x)
    if dropout:
        x = layers.Dropout(dropout, name="positions_dropout")(x)
    for i in range(n_layers):
        h = layers.LayerNormalization(name=f"block{i}_ln1")(x)
        h = layers.MultiHeadAttention(heads, width // heads, dropout=dropout,
                                      name=f"block{i}_attention")(h, h, use_causal_mask=causal)
        if dropout:
            h = layers.Dropout(dropout, name=f"block{i}_dropout1")(h)
        x = layers.Add(name=f"block{i}_add1")([x, h])
        h = layers.LayerNormalization(name=f"block{i}_ln2")(x)
        h = layers.Dense(FF_MULT * width, activation="relu", name=f"block{i}_ff1")(h)
        h = layers.Dense(width, name=f"block{i}_ff2")(h)
        if dropout:
            h = layers.Dropout(dropout, name=f"block{i}_dropout2")(h)
        x = layers.Add(name=f"block{i}_add2")([x, h])
    return layers.LayerNormalization(name="final_ln")(x)


def is_attention(model: keras.Model) -> bool:
    """Whether `model` was built around `encoder` (rather than recurrent cells)."""
    return any(isinstance(layer, PositionEmbedding) for layer in model.layers)


# ---------------------------------------------------------------- generation, in NumPy


def _norm(layer) -> tuple:
    gamma, beta = (np.asarray(w, "float32") for w in layer.get_weights())
    return gamma, beta, layer.epsilon


def _layer_norm(x, norm):
    gamma, beta, eps = norm
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


class CachedDecoder:
    """A causal attention LM built by `encoder` (token Embedding "embedding" in front, Dense
    "logits" at the end), run in NumPy from its trained weights. `prefill(ids)` reads ids at
    once and returns their last logits and the key/value cache; `step(id, cache)` reads one
    more id against the cache: its cost grows with the context, not with re-reading it.

    The context is the position table: when it is full, the cache is rebuilt from the last half
    of it (one prefill every max_positions / 2 characters), so every character is predicted from
    at least half a table of text, as held-out text is scored (`window_loss`).
    """

    def __init__(self, model: keras.Model):
        def w(name):
            return [np.asarray(a, "float32") for a in model.get_layer(name).get_weights()]

        names = {layer.name for layer in model.layers}
        self.embedding = w("embedding")[0]
        self.to_width = w("to_width") if "to_width" in names else None
        self.positions = w("positions")[0]
        self.max_positions = len(self.positions)
        self.blocks = []
        i = 0
        while f"block{i}_attention" in names:
            attention = model.get_layer(f"block{i}_attention")
            # Keras' MultiHeadAttention holds its projections as EinsumDense sublayers:
            # query/key/value kernels [width, heads, head_size], output [heads, head_size, width]
            q, k, v, o = (
                [np.asarray(a, "float32") for a in dense.get_weights()]
                for dense in (attention._query_dense, attention._key_dense,
                              attention._value_dense, attention._output_dense))
            self.blocks.append({"ln1": _norm(model.get_layer(f"block{i}_ln1")),
                                "q": q, "k": k, "v": v, "o": o,
                                "ln2": _norm(model.get_layer(f"block{i}_ln2")),
                                "ff1": w(f"block{i}_ff1"), "ff2": w(f"block{i}_ff2")})
            i += 1
        self.final = _norm(model.get_layer("final_ln"))
        self.logits = w("logits")

    def _forward(self, ids, cache: dict | None):
        """Logits [n, vocab] of ids [n] read after the cache's ids; the cache grown by them."""
        start = 0 if cache is None else cache["length"]
        x = self.embedding[ids]
        if self.to_width is not None:
            x = x @ self.to_width[0] + self.to_width[1]
        x = x + self.positions[start:start + len(ids)]
        new = {"length": start + len(ids), "ids": [*(cache or {}).get("ids", []), *ids],
               "k": [], "v": []}
        for j, b in enumerate(self.blocks):
            h = _layer_norm(x, b["ln1"])
            q = np.einsum("tw,whd->thd", h, b["q"][0]) + b["q"][1]
            k = np.einsum("tw,whd->thd", h, b["k"][0]) + b["k"][1]
            v = np.einsum("tw,whd->thd", h, b["v"][0]) + b["v"][1]
            if cache is not None:
                k = np.concatenate([cache["k"][j], k])
                v = np.concatenate([cache["v"][j], v])
            new["k"].append(k)
            new["v"].append(v)
            scores = np.einsum("thd,shd->hts", q, k) / np.sqrt(q.shape[-1])
            # step t (at start + t) reads steps 0 .. start + t
            future = np.arange(len(k))[None, :] > (start + np.arange(len(ids)))[:, None]
            scores = np.where(future[None], -np.inf, scores)
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            att = np.einsum("hts,shd->thd", scores, v)
            x = x + np.einsum("thd,hdw->tw", att, b["o"][0]) + b["o"][1]
            h = _layer_norm(x, b["ln2"])
            h = np.maximum(h @ b["ff1"][0] + b["ff1"][1], 0.0)
            x = x + h @ b["ff2"][0] + b["ff2"][1]
        x = _layer_norm(x, self.final)
        return x @ self.logits[0] + self.logits[1], new

    def prefill(self, ids) -> tuple[np.ndarray, dict]:
        """Read ids (their last max_positions); the next id's logits and the cache."""
        ids = [int(i) for i in ids][-self.max_positions:]
        logits, cache = self._forward(np.asarray(ids), None)
        return logits[-1], cache

    def step(self, char_id: int, cache: dict) -> tuple[np.ndarray, dict]:
        """One more id: the logits of the id after it, and the cache grown by it."""
        if cache["length"] >= self.max_positions:  # full: go on from its last half
            return self.prefill([*cache["ids"][-(self.max_positions // 2):], char_id])
        logits, cache = self._forward(np.asarray([int(char_id)]), cache)
        return logits[-1], cache

    def full_logits(self, ids) -> np.ndarray:
        """Logits [n, vocab] of every prefix of ids (at most max_positions), without a cache."""
        return self._forward(np.asarray(ids), None)[0]


def window_loss(model: keras.Model, ids: np.ndarray, batch_size: int = 64) -> float:
    """Mean cross-entropy (nats per id) of predicting ids[1:] from what precedes them with a
    causal attention LM whose context is its position table (W steps). Windows of W ids start
    every W / 2 ids; the first scores all its targets, each later one only the W / 2 targets it
    adds, so every id after the first W is predicted from at least W / 2 ids before it."""
    window = next(layer for layer in model.layers
                  if isinstance(layer, PositionEmbedding)).max_positions
    stride = max(window // 2, 1)
    n = len(ids) - 1  # targets
    starts = list(range(0, max(n - window, 0) + stride, stride))
    total, count = 0.0, 0
    for b in range(0, len(starts), batch_size):
        chunk = starts[b:b + batch_size]
        x = np.zeros((len(chunk), window), "int32")
        for r, s in enumerate(chunk):
            part = ids[s:s + window]
            x[r, :len(part)] = part
        logits = np.asarray(model.predict_on_batch(x), "float64")
        for r, s in enumerate(chunk):
            first = 0 if s == 0 else window - stride  # targets scored by an earlier window
            last = min(window, n - s)  # this window's targets: ids[s + 1 : s + last + 1]
            if last <= first:
                continue
            z = logits[r, first:last]
            z = z - z.max(-1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
            y = ids[s + first + 1:s + last + 1]
            total -= logp[np.arange(len(y)), y].sum()
            count += len(y)
    return total / count
