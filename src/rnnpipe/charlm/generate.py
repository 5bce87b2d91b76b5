"""generate: text from a prompt with the champion (or any model), one recurrent step per new
character."""

from __future__ import annotations

from pathlib import Path

from rnnpipe.core.commands import arg, command
from rnnpipe.core.errors import PipelineError
from rnnpipe.core.params import Params
from rnnpipe.core.vocab import Vocabulary


@command("charlm", "generate",
         arg("--prompt", default="The island", help="text to start from (default: %(default)s)"),
         arg("--length", type=int, default=500, help="characters to add (default: %(default)s)"),
         arg("--temperature", type=float, default=1.0,
             help="divides the logits: < 1 safer, > 1 wilder; it is 1 / the textbook's scale "
                  "factor (default: %(default)s)"),
         arg("--seed", type=int, default=0, help="same seed, same text (default: %(default)s)"),
         arg("--top-k", dest="top_k", type=int, default=None,
             help="sample among the k most likely characters only"),
         arg("--model-uri", "--model", dest="model", default=None,
             help="an MLflow model URI, or a .keras file with vocab.json beside it such as "
                  "models/charlm/model.keras (default: "
                  "models:/<charlm.promote.model_name>@champion)"),
         help="write text from a prompt, one step per new character (recurrent state or "
              "an attention model's key/value cache)")
def generate_text(params: Params, prompt: str, length: int, temperature: float, seed: int,
                  top_k: int | None, model: str | None) -> None:
    if length < 0 or temperature <= 0 or not prompt or (top_k is not None and top_k < 1):
        raise PipelineError("need a non-empty prompt, length >= 0, temperature > 0, top-k >= 1")
    model = model or f"models:/{params.charlm.promote.model_name}@champion"
    if ":/" in model:
        import mlflow
        import pandas as pd

        from rnnpipe.core import tracking

        mlflow.set_tracking_uri(tracking.tracking_uri())
        row = {"prompt": prompt, "length": length, "temperature": temperature, "seed": seed}
        if top_k:
            row["top_k"] = top_k
        try:
            out = mlflow.pyfunc.load_model(model).predict(pd.DataFrame([row]))
        except mlflow.exceptions.MlflowException as e:
            raise PipelineError(e.message) from None
        print(out["text"].iloc[0])
        return
    from rnnpipe.charlm.evaluate import load_model
    from rnnpipe.charlm.sampler import Generator

    path = Path(model)
    gen = Generator(load_model(path), Vocabulary.load(path.parent / "vocab.json"))
    print(gen.generate(prompt, length, temperature, seed=seed, top_k=top_k))
