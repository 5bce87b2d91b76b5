"""generate: text from a prompt with the champion (or any model), one recurrent step per new
character. An MLflow model answers with its own code, in a fresh interpreter
(rnnpipe.core.local_model); a .keras file with the working tree's."""

from __future__ import annotations

from pathlib import Path

from rnnpipe.core import local_model
from rnnpipe.core.commands import arg, command
from rnnpipe.core.errors import PipelineError
from rnnpipe.core.params import Params
from rnnpipe.core.vocab import Vocabulary


@command(
    "charlm",
    "generate",
    arg("--prompt", default="The island", help="text to start from (default: %(default)s)"),
    arg("--length", type=int, default=500, help="characters to add (default: %(default)s)"),
    arg(
        "--temperature",
        type=float,
        default=1.0,
        help="divides the logits: < 1 safer, > 1 wilder; it is 1 / the textbook's scale "
        "factor (default: %(default)s)",
    ),
    arg("--seed", type=int, default=0, help="same seed, same text (default: %(default)s)"),
    arg(
        "--top-k",
        dest="top_k",
        type=int,
        default=None,
        help="sample among the k most likely characters only",
    ),
    arg(
        "--model-uri",
        "--model",
        dest="model",
        default=None,
        help="an MLflow model URI or model directory, or a .keras file with vocab.json "
        "beside it such as models/charlm/model.keras (default: the champion, "
        "models:/<charlm.promote.model_name>@champion, else models/charlm/pyfunc)",
    ),
    help="write text from a prompt, one step per new character (recurrent state or "
    "an attention model's key/value cache)",
)
def generate_text(
    params: Params,
    prompt: str,
    length: int,
    temperature: float,
    seed: int,
    top_k: int | None,
    model: str | None,
) -> None:
    if length < 0 or temperature <= 0 or not prompt or (top_k is not None and top_k < 1):
        raise PipelineError("need a non-empty prompt, length >= 0, temperature > 0, top-k >= 1")
    if model is None or Path(model).suffix != ".keras":
        row = {"prompt": prompt, "length": length, "temperature": temperature, "seed": seed}
        if top_k:
            row["top_k"] = top_k
        name = params.charlm.promote.model_name
        for a in local_model.answers("charlm", name, model, [row]):
            print(a["text"])
        return
    from rnnpipe.charlm.evaluate import load_model
    from rnnpipe.charlm.sampler import Generator

    path = Path(model)
    gen = Generator(load_model(path), Vocabulary.load(path.parent / "vocab.json"))
    print(gen.generate(prompt, length, temperature, seed=seed, top_k=top_k))
