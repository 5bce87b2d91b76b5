"""Text generation with carried state: the prompt is read once, then each new character
costs one recurrent step (`Generator`, with `NumpyStepper`), or, for an attention model, one
step against its key/value cache (rnnpipe.core.attention.CachedDecoder).

`step_model(model)` rebuilds a trained char LM (stateful or not) as a stateless functional
model that takes the RNN states as inputs and returns the new ones, sharing the trained weights:
    [ids [1, time], *states] -> [logits [1, time, vocab], *new_states]
It scores a long text chunk by chunk carrying its state (`stream_loss`).

Temperature: logits are divided by `temperature` before the softmax. The textbook's
"scale factor" multiplies them, so temperature = 1 / scale_factor: below 1 is more
conservative, above 1 more random.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from threadpoolctl import threadpool_limits

from rnnpipe.charlm import chars
from rnnpipe.core.attention import CachedDecoder, is_attention, window_loss
from rnnpipe.core.vocab import Vocabulary


def step_model(model: keras.Model) -> keras.Model:
    """A stateless copy of `model` whose RNN states are explicit inputs and outputs."""
    ids = keras.Input(shape=(None,), dtype="int32", name="ids")
    x, states_in, states_out = ids, [], []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.layers.RNN):
            cfg = layer.get_config() | {"stateful": False, "return_state": True,
                                        "return_sequences": True}
            rnn = type(layer).from_config(cfg)
            sizes = layer.cell.state_size
            sizes = list(sizes) if isinstance(sizes, list | tuple) else [sizes]
            state = [keras.Input(shape=(s,), name=f"{layer.name}_s{j}")
                     for j, s in enumerate(sizes)]
            x, *new = rnn(x, initial_state=state)
            states_in += state
            states_out += new
        else:
            x = type(layer).from_config(layer.get_config())(x)
    step = keras.Model([ids, *states_in], [x, *states_out], name="char_lm_step")
    step.set_weights(model.get_weights())
    return step


def zero_states(step: keras.Model, batch: int = 1) -> list[np.ndarray]:
    return [np.zeros((batch, t.shape[-1]), "float32") for t in step.inputs[1:]]


def compiled(step: keras.Model):
    """The step model's forward pass as a compiled function on TensorFlow (a graph traced once
    for any number of time steps); the plain call elsewhere."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        spec = [tf.TensorSpec(t.shape, t.dtype) for t in step.inputs]
        fn = tf.function(lambda *a: step(list(a), training=False),
                         input_signature=spec, reduce_retracing=True)
        return lambda *a: [np.asarray(o) for o in fn(*a)]
    return lambda *a: [keras.ops.convert_to_numpy(o) for o in step(list(a), training=False)]


def probabilities(logits: np.ndarray, temperature: float, top_k: int | None = None,
                  banned: tuple[int, ...] = ()) -> np.ndarray:
    """softmax(logits / temperature), restricted to the top_k most likely ids if given."""
    z = np.asarray(logits, dtype="float64") / temperature
    z[list(banned)] = -np.inf
    if top_k:
        kth = np.sort(z)[-min(top_k, len(z))]
        z[z < kth] = -np.inf
    z = np.exp(z - z.max())
    return z / z.sum()


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


ACTIVATIONS = {"tanh": np.tanh, "sigmoid": _sigmoid, "relu": lambda z: np.maximum(z, 0.0),
               "linear": lambda z: z}


class NumpyStepper:
    """One character in, the next character's logits out, state carried: the trained layers'
    arithmetic for a single time step in NumPy (Embedding, SimpleRNN/LSTM/GRU, Dense; Dropout
    is the identity at inference). A step is a few small matrix-vector products, with no
    framework call overhead, on any Keras backend. Tests check it against the Keras model."""

    def __init__(self, model: keras.Model):
        self.layers = []
        for layer in model.layers:
            w = [np.asarray(a, "float32") for a in layer.get_weights()]
            if isinstance(layer, keras.layers.Embedding):
                self.layers.append(("embedding", w, None))
            elif isinstance(layer, keras.layers.RNN):
                cfg = layer.get_config()
                if isinstance(layer, keras.layers.GRU) and not cfg.get("reset_after", True):
                    raise ValueError("GRU(reset_after=False) is not supported")
                acts = (ACTIVATIONS[cfg["activation"]],
                        ACTIVATIONS[cfg.get("recurrent_activation", "sigmoid")])
                self.layers.append((type(layer).__name__, w, acts))
            elif isinstance(layer, keras.layers.Dense):
                self.layers.append(("dense", w, ACTIVATIONS[layer.get_config()["activation"]]))

    def zero_states(self) -> list:
        states = []
        for kind, w, _ in self.layers:
            units = w[1].shape[0] if kind in ("SimpleRNN", "LSTM", "GRU") else 0
            states.append([np.zeros(units, "float32")] * (2 if kind == "LSTM" else 1))
        return states

    def step(self, char_id: int, states: list) -> tuple[np.ndarray, list]:
        x, new = None, []
        for (kind, w, act), s in zip(self.layers, states, strict=True):
            if kind == "embedding":
                x = w[0][char_id]
            elif kind == "dense":
                x = act(x @ w[0] + w[1])
            elif kind == "SimpleRNN":
                s = [act[0](x @ w[0] + s[0] @ w[1] + w[2])]
                x = s[0]
            elif kind == "LSTM":  # gates i, f, c, o
                i, f, c, o = np.split(x @ w[0] + s[0] @ w[1] + w[2], 4)
                cell = act[1](f) * s[1] + act[1](i) * act[0](c)
                x = act[1](o) * act[0](cell)
                s = [x, cell]
            else:  # GRU, reset_after=True: gates z, r, h; bias [input, recurrent]
                xz, xr, xh = np.split(x @ w[0] + w[2][0], 3)
                hz, hr, hh = np.split(s[0] @ w[1] + w[2][1], 3)
                z, r = act[1](xz + hz), act[1](xr + hr)
                x = z * s[0] + (1 - z) * act[0](xh + r * hh)
                s = [x]
            new.append(s)
        return x, new


class Generator:
    """Writes text from a prompt with a trained char LM and its vocabulary."""

    def __init__(self, model: keras.Model, vocab: Vocabulary):
        self.vocab = vocab
        self.attention = is_attention(model)
        self.stepper = CachedDecoder(model) if self.attention else NumpyStepper(model)

    def read(self, prompt: str) -> tuple[np.ndarray, list | dict]:
        """Read the prompt once: the logits of the next character and the carried state (an
        attention model's key/value cache)."""
        if self.attention:
            return self.stepper.prefill(chars.encode(prompt, self.vocab))
        states = self.stepper.zero_states()
        for i in chars.encode(prompt, self.vocab):
            logits, states = self.stepper.step(i, states)
        return logits, states

    def next_distribution(self, prompt: str, temperature: float = 1.0) -> np.ndarray:
        """The distribution of the character after `prompt`."""
        return probabilities(self.read(prompt)[0], temperature)

    def generate(self, prompt: str, length: int, temperature: float = 1.0, seed: int = 0,
                 top_k: int | None = None) -> str:
        """`prompt` followed by `length` sampled characters. Same seed, same text."""
        if not prompt:
            raise ValueError("the prompt must hold at least one character")
        if temperature <= 0:
            raise ValueError("temperature must be > 0")
        rng = np.random.default_rng(seed)
        banned = (self.vocab.oov_id,)  # never write the "unseen character" id
        out = []
        # one BLAS thread: for one small matrix-vector product, more threads only wait
        with threadpool_limits(limits=1, user_api="blas"):
            logits, states = self.read(prompt)
            for _ in range(length):
                i = rng.choice(len(logits), p=probabilities(logits, temperature, top_k, banned))
                out.append(self.vocab.tokens[i])
                logits, states = self.stepper.step(i, states)  # one step per character
        return prompt + "".join(out)


def stream_loss(model: keras.Model, ids: np.ndarray, chunk: int = 2000) -> float:
    """Mean cross-entropy (nats/char) of predicting ids[1:] from what precedes them, reading
    the text as one continuous stream (state carried across chunks, from a zero state). An
    attention model reads it in overlapping windows of its context (window_loss)."""
    if is_attention(model):
        return window_loss(model, ids)
    step = step_model(model)
    fn = compiled(step)
    states = zero_states(step)
    total, count = 0.0, 0
    for s in range(0, len(ids) - 1, chunk):
        x = ids[s : s + chunk][None, :].astype("int32")
        y = ids[s + 1 : s + chunk + 1]
        x = x[:, : len(y)]
        logits, *states = fn(x, *states)
        z = logits[0].astype("float64")
        z = z - z.max(axis=-1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
        total -= logp[np.arange(len(y)), y].sum()
        count += len(y)
    return total / count


def metrics(loss_nats: float) -> dict:
    loss_nats = float(loss_nats)
    return {"loss": loss_nats, "bits_per_char": loss_nats / math.log(2),
            "perplexity": math.exp(loss_nats)}
