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
            raise ValueError(
                f"sequences of {input_shape[1]} steps do not fit a position table "
                f"of {self.max_positions}"
            )
        self.table = self.add_weight(
            shape=(self.max_positions, input_shape[-1]),
            name="table",
            initializer=keras.initializers.RandomNormal(stddev=0.02),
        )

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


def encoder(
    x, *, width: int, heads: int, n_layers: int, dropout: float, max_positions: int, causal: bool
):
    """The Transformer encoder on token vectors x [batch, time, dim] -> [batch, time, width]."""
    check_shape(width, heads)
    if x.shape[-1] != width:
        x = layers.Dense(width, name="to_width")(x)
    x = PositionEmbedding(max_positions, name="positions")(x)
    if dropout:
        x = layers.Dropout(dropout, name="positions_dropout")(x)
    for i in range(n_layers):
        h = layers.LayerNormalization(name=f"block{i}_ln1")(x)
        h = layers.MultiHeadAttention(
            heads, width // heads, dropout=dropout, name=f"block{i}_attention"
        )(h, h, use_causal_mask=causal)
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
#
# Generation steps many rows at once, and a row's text must be the same alone or in any batch.
# Plain float32 NumPy would not give that: BLAS sums a matrix product in an order that depends
# on the shapes (a matrix-vector product for one row, blocked kernels for many, and which tile
# a row falls in), and float32 sums in another order round differently. So every product here
# is summed exactly (ExactDense, and the attention scores in _attend), and the one sum that is
# not a matrix product, attention's weighted sum of the values, adds the key positions in order.


def _round(a: np.ndarray, bits: int, axis: int) -> np.ndarray:
    """a as float64 on a grid of one power of two per slice along `axis`, chosen so that the
    slice's largest |entry| keeps `bits` significant bits: every entry becomes an integer of
    at most 2**bits grid units."""
    _, e = np.frexp(np.abs(a).max(axis=axis, keepdims=True))  # largest |entry| < 2**e
    grid = np.ldexp(1.0, e - bits)
    units = a / grid  # float64, exact: a power of two
    np.rint(units, out=units)
    units *= grid
    return units


def _split_bits(terms: int) -> tuple[int, int]:
    """Bits of the two factors of a sum of `terms` products that float64 holds exactly: each
    product at most 2**(a + b) grid units, the sum at most 2**53."""
    room = 53 - (terms - 1).bit_length()  # (terms - 1).bit_length() = ceil(log2(terms))
    return room - room // 2, room // 2


class ExactDense:
    """x @ kernel (+ bias), with the same bits for a row alone or in any batch.

    Each column of the kernel (once) and each row of x (each call) is rounded to a grid of
    one power of two (_round: at least 21 significant bits of its largest entry for up to
    2,048 inputs, where float32 has 24), so that every product and every partial sum is an
    integer number of grid units below 2**53: float64 holds them all exactly, the sum is exact
    in whatever order BLAS takes it, and it is rounded once, to float32. The price: a float64
    product, about twice the time of a float32 one.
    """

    def __init__(self, kernel: np.ndarray, bias: np.ndarray | None = None):
        self.x_bits, w_bits = _split_bits(len(kernel))
        self.kernel = _round(np.asarray(kernel), w_bits, axis=0)
        self.bias = None if bias is None else np.asarray(bias, "float32")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = _round(np.asarray(x), self.x_bits, axis=-1)
        y = (x.reshape(-1, x.shape[-1]) @ self.kernel).astype("float32")
        y = y.reshape(*x.shape[:-1], y.shape[-1])
        return y if self.bias is None else y + self.bias


def _norm(layer) -> tuple:
    gamma, beta = (np.asarray(w, "float32") for w in layer.get_weights())
    return gamma, beta, layer.epsilon


def _layer_norm(x, norm):
    gamma, beta, eps = norm
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


QUERY_CHUNK = 32  # queries attended at once: bounds the [keys, rows, queries, ...] products


def _attend(q, keys, values, visible) -> np.ndarray:
    """Attention of queries q [rows, T, heads, size] (float32, scaled) over the keys [rows,
    heads, S, size] (float64, each rounded by _round) and the values [S, rows, heads, size + 1]
    (float32, last entry 1) of positions 0..S-1; visible [rows, T, S]: the positions each query
    reads. Returns [rows, T, heads, size]."""
    rows, steps, heads, size = q.shape
    q = _round(q.transpose(0, 2, 1, 3), _split_bits(size)[0], axis=-1)
    scores = q @ keys.transpose(0, 1, 3, 2)  # exact, as in ExactDense: [rows, heads, T, S]
    scores = np.where(visible[:, None], scores, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True)).astype("float32")
    weights = np.ascontiguousarray(weights.transpose(3, 0, 2, 1))[..., None]  # [S, rows, T, h, 1]
    out = np.empty((rows, steps, heads, size), "float32")
    for t in range(0, steps, QUERY_CHUNK):
        # the weighted values summed over the positions in their order (a C-ordered product
        # summed over its first axis), with the weights' sum in the last entry: an unread
        # position adds exact zeros, so a row's sums do not depend on the others' lengths
        part = np.multiply(weights[:, :, t : t + QUERY_CHUNK], values[:, :, None], order="C")
        total = part.sum(axis=0)  # [rows, chunk, heads, size + 1]
        out[:, t : t + QUERY_CHUNK] = total[..., :-1] / total[..., -1:]
    return out


class CachedDecoder:
    """A causal attention LM built by `encoder` (token Embedding "embedding" in front, Dense
    "logits" at the end), run in NumPy from its trained weights for a batch of rows.
    `read(prompts)` reads each row's ids at once (a prefill) and returns the logits of the id
    after each and a key/value cache per row; `step(ids, cache)` reads one more id per row
    against its cache: its cost grows with the context, not with re-reading it. Rows may hold
    prompts of different lengths, hence be at different positions.

    The context is the position table: when a row's cache is full, it is rebuilt from the last
    half of it (one prefill every max_positions / 2 characters), so every character is
    predicted from at least half a table of text, as held-out text is scored (`window_loss`).
    A row's logits have the same bits alone or in any batch (ExactDense, _attend).
    """

    def __init__(self, model: keras.Model):
        def w(name):
            return [np.asarray(a, "float32") for a in model.get_layer(name).get_weights()]

        names = {layer.name for layer in model.layers}
        embedding = w("embedding")[0]
        # the token vectors at the model's width, for every id at once
        self.tokens = ExactDense(*w("to_width"))(embedding) if "to_width" in names else embedding
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
                for dense in (
                    attention._query_dense,
                    attention._key_dense,
                    attention._value_dense,
                    attention._output_dense,
                )
            )
            width, self.heads, self.head_size = q[0].shape
            self.blocks.append(
                {
                    "ln1": _norm(model.get_layer(f"block{i}_ln1")),
                    # the three projections side by side: one product
                    "qkv": ExactDense(
                        np.concatenate([a[0].reshape(width, -1) for a in (q, k, v)], 1),
                        np.concatenate([a[1].reshape(-1) for a in (q, k, v)]),
                    ),
                    "o": ExactDense(o[0].reshape(-1, width), o[1]),
                    "ln2": _norm(model.get_layer(f"block{i}_ln2")),
                    "ff1": ExactDense(*w(f"block{i}_ff1")),
                    "ff2": ExactDense(*w(f"block{i}_ff2")),
                }
            )
            i += 1
        self.scale = np.float32(1.0 / np.sqrt(self.head_size))  # as Keras scales the queries
        self.final = _norm(model.get_layer("final_ln"))
        self.logits = ExactDense(*w("logits"))

    def empty(self, rows: int) -> dict:
        """A cache of `rows` rows holding nothing: per block the rounded keys [rows, heads,
        positions, size] and the values with a last entry 1 [positions, rows, heads, size + 1],
        and per row its length and ids."""
        n, h, d = self.max_positions, self.heads, self.head_size
        return {
            "length": np.zeros(rows, "int64"),
            "ids": [[] for _ in range(rows)],
            "k": [np.zeros((rows, h, n, d)) for _ in self.blocks],
            "v": [np.zeros((n, rows, h, d + 1), "float32") for _ in self.blocks],
        }

    @staticmethod
    def first(cache: dict, rows: int) -> dict:
        """The cache of the first `rows` rows (views: a step writes into `cache`)."""
        return {
            "length": cache["length"][:rows],
            "ids": cache["ids"][:rows],
            "k": [k[:rows] for k in cache["k"]],
            "v": [v[:, :rows] for v in cache["v"]],
        }

    def _store(self, keys, values, k, v, start):
        """Write k and v [rows, T, heads, size] at each row's positions start.. of the cache."""
        k = _round(k, _split_bits(self.head_size)[1], axis=-1)
        v = np.concatenate([v, np.ones(v.shape[:-1] + (1,), "float32")], axis=-1)
        if k.shape[1] == 1:  # a step: each row at its own position
            rows = np.arange(len(start))
            keys[rows, :, start] = k[:, 0]
            values[start, rows] = v[:, 0]
        else:  # a prefill: from position 0
            keys[:, :, : k.shape[1]] = k.transpose(0, 2, 1, 3)
            values[: v.shape[1]] = v.transpose(1, 0, 2, 3)

    def _forward(self, ids, cache, start):
        """The final hidden vectors [rows, T, width] of ids [rows, T], each row read after the
        first start[row] positions of its cache (T > 1 only from position 0); their keys and
        values are written into the cache."""
        rows, steps = ids.shape
        at = start[:, None] + np.arange(steps)  # [rows, T]
        x = self.tokens[ids] + self.positions[at]
        visible = np.arange(at.max() + 1) <= at[..., None]  # [rows, T, S]: causal
        seen = visible.shape[-1]
        for b, keys, values in zip(self.blocks, cache["k"], cache["v"], strict=True):
            h = _layer_norm(x, b["ln1"])
            qkv = b["qkv"](h).reshape(rows, steps, 3, self.heads, -1)
            q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # [rows, T, heads, size]
            self._store(keys, values, k, v, start)
            att = _attend(q * self.scale, keys[:, :, :seen], values[:seen], visible)
            x = x + b["o"](att.reshape(rows, steps, -1))
            h = _layer_norm(x, b["ln2"])
            x = x + b["ff2"](np.maximum(b["ff1"](h), 0.0))
        return _layer_norm(x, self.final)

    def _prefill(self, ids, cache: dict, row: int) -> np.ndarray:
        """Read ids at once into row `row` of the cache (alone: its bits cannot depend on the
        other rows); the logits of the id after them."""
        part = {
            "k": [k[row : row + 1] for k in cache["k"]],
            "v": [v[:, row : row + 1] for v in cache["v"]],
        }
        x = self._forward(np.asarray([ids], "int64"), part, np.zeros(1, "int64"))
        cache["length"][row] = len(ids)
        cache["ids"][row][:] = ids  # in place: the same list in every view of the cache
        return self.logits(x[0, -1])

    def read(self, prompts) -> tuple[np.ndarray, dict]:
        """Read each row's ids (their last max_positions): the logits of the id after each
        [rows, vocab] and the cache."""
        cache = self.empty(len(prompts))
        logits = [
            self._prefill([int(i) for i in p][-self.max_positions :], cache, r)
            for r, p in enumerate(prompts)
        ]
        return np.stack(logits), cache

    def step(self, ids, cache: dict) -> tuple[np.ndarray, dict]:
        """One more id per row: the logits of the id after each [rows, vocab], and the cache
        grown by it. A row whose cache is full first goes back to its last half."""
        for r in np.flatnonzero(cache["length"] >= self.max_positions):
            self._prefill(cache["ids"][r][-(self.max_positions // 2) :], cache, r)
        ids = np.asarray(ids, "int64")
        x = self._forward(ids[:, None], cache, cache["length"].copy())
        cache["length"] += 1
        for history, i in zip(cache["ids"], ids.tolist(), strict=True):
            history.append(i)
        return self.logits(x[:, 0]), cache

    def full_logits(self, ids) -> np.ndarray:
        """Logits [n, vocab] of every prefix of ids (at most max_positions), without a cache."""
        return self.logits(
            self._forward(np.asarray([ids], "int64"), self.empty(1), np.zeros(1, "int64"))[0]
        )


def window_loss(model: keras.Model, ids: np.ndarray, batch_size: int = 64) -> float:
    """Mean cross-entropy (nats per id) of predicting ids[1:] from what precedes them with a
    causal attention LM whose context is its position table (W steps). Windows of W ids start
    every W / 2 ids; the first scores all its targets, each later one only the W / 2 targets it
    adds, so every id after the first W is predicted from at least W / 2 ids before it."""
    window = next(
        layer for layer in model.layers if isinstance(layer, PositionEmbedding)
    ).max_positions
    stride = max(window // 2, 1)
    n = len(ids) - 1  # targets
    starts = list(range(0, max(n - window, 0) + stride, stride))
    total, count = 0.0, 0
    for b in range(0, len(starts), batch_size):
        chunk = starts[b : b + batch_size]
        x = np.zeros((len(chunk), window), "int32")
        for r, s in enumerate(chunk):
            part = ids[s : s + window]
            x[r, : len(part)] = part
        logits = np.asarray(model.predict_on_batch(x), "float64")
        for r, s in enumerate(chunk):
            first = 0 if s == 0 else window - stride  # targets scored by an earlier window
            last = min(window, n - s)  # this window's targets: ids[s + 1 : s + last + 1]
            if last <= first:
                continue
            z = logits[r, first:last]
            z = z - z.max(-1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
            y = ids[s + first + 1 : s + last + 1]
            total -= logp[np.arange(len(y)), y].sum()
            count += len(y)
    return total / count
