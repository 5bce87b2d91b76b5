"""What a logged model needs where it is served."""

from __future__ import annotations

from importlib.metadata import version

# what the pyfuncs import when they load and predict
PACKAGES = ("mlflow", "keras", "tensorflow", "numpy", "pandas", "pyarrow", "threadpoolctl")


def requirements() -> list[str]:
    """The packages a served model imports, pinned to the versions it is logged with. Given to
    log_model, they spare MLflow loading the model in a subprocess to infer them (about 10 s a
    model on 2 CPU cores)."""
    return [f"{name}=={version(name)}" for name in PACKAGES]
