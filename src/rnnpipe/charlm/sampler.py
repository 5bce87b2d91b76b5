"""Text generation with carried state: the prompt is read once, then each new character
costs one recurrent step (`Generator`, with `NumpyStepper`), or, for an attention model, one
step against its key/value cache (rnnpipe.core.attention.CachedDecoder). Many rows are stepped
together (`Generator.generate_many`), and a row's text does not depend on the other rows: the
products of a step are summed exactly (rnnpipe.core.attention.ExactDense), and each row samples
with its own random generator.

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
import time

import keras
import numpy as np
from threadpoolctl import threadpool_limits

from rnnpipe.charlm import chars
from rnnpipe.core.attention import CachedDecoder, ExactDense, is_attention, window_loss
from rnnpipe.core.vocab import Vocabulary


def step_model(model: keras.Model) -> keras.Model:
    """A stateless copy of `model` whose RNN states are explicit inputs and outputs."""
    ids = keras.Input(shape=(None,), dtype="int32", name="ids")
    x, states_in, states_out = ids, [], []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.layers.RNN):
            cfg = layer.get_config() | {
                "stateful": False,
                "return_state": True,
                "return_sequences": True,
            }
            rnn = type(layer).from_config(cfg)
            sizes = layer.cell.state_size
            sizes = list(sizes) if isinstance(sizes, list | tuple) else [sizes]
            state = [
                keras.Input(shape=(s,), name=f"{layer.name}_s{j}") for j, s in enumerate(sizes)
            ]
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
        fn = tf.function(
            lambda *a: step(list(a), training=False), input_signature=spec, reduce_retracing=True
        )
        return lambda *a: [np.asarray(o) for o in fn(*a)]
    return lambda *a: [keras.ops.convert_to_numpy(o) for o in step(list(a), training=False)]


def distributions(
    logits: np.ndarray, temperature: np.ndarray, top_k: np.ndarray, banned: tuple[int, ...] = ()
) -> np.ndarray:
    """softmax(logits / temperature) of each row [rows, vocab], restricted to its top_k most
    likely ids where top_k > 0; the same arithmetic for a row alone or in a batch."""
    z = np.asarray(logits, dtype="float64") / np.asarray(temperature, "float64")[:, None]
    z[:, list(banned)] = -np.inf
    if np.any(top_k):
        vocab = z.shape[1]
        keep = np.where(top_k > 0, np.minimum(top_k, vocab), vocab)
        kth = np.sort(z, axis=1)[np.arange(len(z)), vocab - keep]
        z[z < kth[:, None]] = -np.inf
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def probabilities(
    logits: np.ndarray, temperature: float, top_k: int | None = None, banned: tuple[int, ...] = ()
) -> np.ndarray:
    """softmax(logits / temperature), restricted to the top_k most likely ids if given."""
    return distributions(
        np.asarray(logits)[None], np.array([temperature]), np.array([top_k or 0]), banned
    )[0]


def sample(p: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    """One id per row of p [rows, vocab] from one uniform draw per row: what
    `rng.choice(vocab, p=row)` returns when rng.random() would draw `uniform`."""
    cdf = p.cumsum(axis=1)
    cdf /= cdf[:, -1:]
    return (cdf <= uniform[:, None]).sum(axis=1)


def _sigmoid(z):
    e = np.exp(-z)
    e += 1.0
    return np.divide(1.0, e, out=e)  # 1 / (1 + exp(-z)), in place


ACTIVATIONS = {
    "tanh": np.tanh,
    "sigmoid": _sigmoid,
    "relu": lambda z: np.maximum(z, 0.0),
    "linear": lambda z: z,
}


def _gate(z: np.ndarray, k: int, units: int) -> np.ndarray:
    """Gate k of z [rows, gates * units], C-ordered: an activation then reads the same layout
    for one row as for many (NumPy may take another loop for a strided array)."""
    return np.ascontiguousarray(z[:, k * units : (k + 1) * units])


class Recurrent:
    """A SimpleRNN, LSTM or GRU layer (reset_after=True), Keras' arithmetic, for a batch of
    rows. `inputs` and `recurrent`: its kernels and biases. `step(x, state)` takes its inputs
    already projected; its state ends with its recurrent projection for the next step, which
    `feed` computes in one product with the next layer's projected inputs."""

    def __init__(self, layer: keras.layers.RNN):
        cfg = layer.get_config()
        self.kind = type(layer).__name__
        if self.kind == "GRU" and not cfg.get("reset_after", True):
            raise ValueError("GRU(reset_after=False) is not supported")
        kernel, recurrent, *bias = [np.asarray(a, "float32") for a in layer.get_weights()]
        width = kernel.shape[1]
        bias = bias[0] if bias else np.zeros(width, "float32")
        recurrent_bias = np.zeros(width, "float32")
        if self.kind == "GRU":  # reset_after: [input bias, recurrent bias]
            bias, recurrent_bias = bias
        self.units = len(recurrent)
        self.inputs = (kernel, bias)
        self.recurrent = (recurrent, recurrent_bias)
        self.act = ACTIVATIONS[cfg["activation"]]
        self.gate = ACTIVATIONS[cfg.get("recurrent_activation", "sigmoid")]

    def feed(self, after) -> None:
        """Project this layer's output by one product: its recurrent part, then `after`'s
        inputs."""
        self.out = ExactDense(
            *(np.concatenate(a, axis=-1) for a in zip(self.recurrent, after.inputs, strict=True))
        )

    def zero_state(self, rows: int) -> list:
        h = np.zeros((rows, self.units), "float32")
        cell = [h.copy()] if self.kind == "LSTM" else []
        return [h, *cell, self.out(h)[:, : self.recurrent[0].shape[1]]]

    def step(self, x: np.ndarray, state: list) -> tuple[np.ndarray, list]:
        """x: this layer's projected inputs [rows, gates * units] -> the next layer's, and the
        new state."""
        inner, u = state[-1], self.units
        if self.kind == "SimpleRNN":
            h = self.act(x + inner)
            cell = []
        elif self.kind == "LSTM":  # gates i, f, c, o
            z = x + inner
            i, f, c, o = (_gate(z, k, u) for k in range(4))
            cell = [self.gate(f) * state[1] + self.gate(i) * self.act(c)]
            h = self.gate(o) * self.act(cell[0])
        else:  # GRU: gates z, r, h; the recurrent bias is inside `inner`
            zr = self.gate(x[:, : 2 * u] + inner[:, : 2 * u])
            z, r = zr[:, :u], zr[:, u:]
            h = z * state[0] + (1 - z) * self.act(x[:, 2 * u :] + r * inner[:, 2 * u :])
            cell = []
        out = self.out(h)
        split = inner.shape[1]
        return out[:, split:], [h, *cell, out[:, :split]]


class Dense:
    """A Dense layer in the form of Recurrent, with no state."""

    def __init__(self, layer: keras.layers.Dense):
        kernel, *bias = [np.asarray(a, "float32") for a in layer.get_weights()]
        self.inputs = (kernel, bias[0] if bias else np.zeros(kernel.shape[1], "float32"))
        self.act = ACTIVATIONS[layer.get_config()["activation"]]
        self.out = None  # the last layer: its output is the step's

    def feed(self, after) -> None:
        self.out = ExactDense(*after.inputs)

    def zero_state(self, rows: int) -> list:
        return []

    def step(self, x: np.ndarray, state: list) -> tuple[np.ndarray, list]:
        y = self.act(x)
        return (y if self.out is None else self.out(y)), state


class NumpyStepper:
    """One character per row in, the next character's logits out, states carried: the trained
    layers' arithmetic for one time step of a batch of rows, in NumPy (Embedding,
    SimpleRNN/LSTM/GRU, Dense; Dropout is the identity at inference). A step is a few matrix
    products, with no framework call overhead, on any Keras backend; its products are summed
    exactly (ExactDense), so a row's logits have the same bits alone or in any batch. Tests
    check it against the Keras model."""

    def __init__(self, model: keras.Model):
        embedding, self.layers = None, []
        for layer in model.layers:
            if isinstance(layer, keras.layers.Embedding):
                embedding = np.asarray(layer.get_weights()[0], "float32")
            elif isinstance(layer, keras.layers.RNN):
                self.layers.append(Recurrent(layer))
            elif isinstance(layer, keras.layers.Dense):
                self.layers.append(Dense(layer))
        if embedding is None or not self.layers or not isinstance(self.layers[-1], Dense):
            raise ValueError("expected an Embedding, recurrent layers and Dense logits")
        # every layer's output projected once, for the next layer (and its own next step)
        for layer, after in zip(self.layers, self.layers[1:], strict=False):
            layer.feed(after)
        # the first layer's projected inputs of every id, computed once: a step looks them up
        self.first_inputs = ExactDense(*self.layers[0].inputs)(embedding)

    def zero_states(self, rows: int = 1) -> list:
        return [layer.zero_state(rows) for layer in self.layers]

    @staticmethod
    def first(states: list, rows: int) -> list:
        """The states of the first `rows` rows."""
        return [[a[:rows] for a in state] for state in states]

    def step(self, ids, states: list) -> tuple[np.ndarray, list]:
        """ids [rows] -> the logits of the id after each [rows, vocab], and the new states."""
        x, new = self.first_inputs[np.asarray(ids)], []
        for layer, state in zip(self.layers, states, strict=True):
            x, state = layer.step(x, state)
            new.append(state)
        return x, new

    def read(self, prompts) -> tuple[np.ndarray, list]:
        """Read each row's ids (at least one), the rows stepped together: the logits of the id
        after each [rows, vocab] and the states."""
        order = sorted(range(len(prompts)), key=lambda r: -len(prompts[r]))  # longest first
        lengths = np.array([len(prompts[r]) for r in order])
        ids = np.zeros((len(order), lengths[0]), "int64")
        for j, r in enumerate(order):
            ids[j, : lengths[j]] = prompts[r]
        states = final = self.zero_states(len(order))
        logits = None
        for t in range(lengths[0]):
            reading = int((lengths > t).sum())  # the first rows: those still reading
            out, states = self.step(ids[:reading, t], self.first(states, reading))
            if logits is None:
                logits = np.empty((len(order), out.shape[1]), "float32")
            done = slice(int((lengths > t + 1).sum()), reading)  # rows at their last id
            logits[done] = out[done]
            for kept, new in zip(final, states, strict=True):
                for a, b in zip(kept, new, strict=True):
                    a[done] = b[done]
        back = np.argsort(order)
        return logits[back], [[a[back] for a in state] for state in final]


BATCH_ROWS = 256  # rows stepped together at most: bounds the memory of their states


class Generator:
    """Writes text from a prompt with a trained char LM and its vocabulary, for one row or many
    at once."""

    def __init__(self, model: keras.Model, vocab: Vocabulary):
        self.vocab = vocab
        self.attention = is_attention(model)
        self.stepper = CachedDecoder(model) if self.attention else NumpyStepper(model)

    @property
    def context(self) -> int | None:
        """How many of a prompt's last characters the model reads (None: all of them)."""
        return self.stepper.max_positions if self.attention else None

    def next_distribution(self, prompt: str, temperature: float = 1.0) -> np.ndarray:
        """The distribution of the character after `prompt`."""
        return probabilities(
            self.stepper.read([chars.encode(prompt, self.vocab)])[0][0], temperature
        )

    def generate(
        self,
        prompt: str,
        length: int,
        temperature: float = 1.0,
        seed: int = 0,
        top_k: int | None = None,
    ) -> str:
        """`prompt` followed by `length` sampled characters. Same seed, same text."""
        return self.generate_many(
            [
                {
                    "prompt": prompt,
                    "length": length,
                    "temperature": temperature,
                    "seed": seed,
                    "top_k": top_k,
                }
            ]
        )[0]

    def generate_many(self, rows: list[dict]) -> list[str]:
        """Each row's prompt followed by its `length` sampled characters; rows of prompt,
        length, temperature and optional seed (default 0) and top_k, as
        rnnpipe.core.requests.generation_requests returns them. The rows are stepped
        together, and a row's text is the same alone or in any batch: same seed, same text."""
        for row in rows:
            if not row["prompt"]:
                raise ValueError("the prompt must hold at least one character")
            if row["temperature"] <= 0:
                raise ValueError("temperature must be > 0")
        order = sorted(
            (r for r, row in enumerate(rows) if row["length"] > 0), key=lambda r: -rows[r]["length"]
        )
        texts = [row["prompt"] for row in rows]
        # one BLAS thread: a step's products are small, and a thread waiting for a busy core
        # stalls every step (the bits do not depend on it: the sums are exact)
        with threadpool_limits(limits=1, user_api="blas"):
            for start in range(0, len(order), BATCH_ROWS):
                batch = order[start : start + BATCH_ROWS]
                for r, text in zip(batch, self._write([rows[r] for r in batch]), strict=True):
                    texts[r] += text
        return texts

    def _write(self, rows: list[dict]) -> list[str]:
        """The characters sampled for each row, rows longest first (so that the rows still
        writing are always the first ones)."""
        lengths = np.array([row["length"] for row in rows])
        temperature = np.array([float(row["temperature"]) for row in rows])
        top_k = np.array([row.get("top_k") or 0 for row in rows])
        # each row's draws, from its own generator: the ones rng.random() would give in turn
        uniform = np.zeros((len(rows), lengths[0]))
        for r, row in enumerate(rows):
            uniform[r, : row["length"]] = np.random.default_rng(row.get("seed", 0)).random(
                row["length"]
            )
        banned = (self.vocab.oov_id,)  # never write the "unseen character" id
        out = np.zeros((len(rows), lengths[0]), "int64")
        logits, state = self.stepper.read([chars.encode(row["prompt"], self.vocab) for row in rows])
        for t in range(lengths[0]):
            live = len(logits)
            p = distributions(logits, temperature[:live], top_k[:live], banned)
            out[:live, t] = sample(p, uniform[:live, t])
            live = int((lengths > t + 1).sum())  # a finished row stops costing
            if live:
                logits, state = self.stepper.step(out[:live, t], self.stepper.first(state, live))
        return ["".join(self.vocab.tokens[i] for i in out[j, :n]) for j, n in enumerate(lengths)]


def step_costs(generator: Generator, rows: int = 16) -> tuple[float, float]:
    """Seconds of generation per batched step, and per row in a step, measured here: one row,
    then `rows` rows, each writing 64 characters (an attention model: a context and a half,
    after a prompt that fills its context, so that its cache is rebuilt as often as in a long
    text; the prompt's read is charged to the written characters). A row costs less in a
    larger batch: measured on a few rows, its cost is on the safe side."""
    steps = 64 if generator.context is None else generator.context * 3 // 2
    known = next(t for i, t in enumerate(generator.vocab.tokens) if i != generator.vocab.oov_id)

    def seconds(n: int, length: int = steps) -> float:
        batch = [
            {
                "prompt": known * (generator.context or 1),
                "length": length,
                "temperature": 1.0,
                "seed": r,
            }
            for r in range(n)
        ]
        start = time.perf_counter()
        generator.generate_many(batch)
        return time.perf_counter() - start

    seconds(rows, 2)  # warm up
    one, many = seconds(1), seconds(rows)
    # timing noise must not make a row's step look free
    per_row = max(many - one, one / rows) / ((rows - 1) * steps)
    return max(one / steps - per_row, 0.0), per_row


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
    return {
        "loss": loss_nats,
        "bits_per_char": loss_nats / math.log(2),
        "perplexity": math.exp(loss_nats),
    }
