class PipelineError(Exception):
    """An error the user can act on: the CLI prints its message (no traceback) and exits 1."""


class UsageError(PipelineError):
    """A bad command line or input file: the CLI prints its message and exits 2, as argparse
    does for bad arguments."""


class ModelConfigError(PipelineError, ValueError):
    """Hyperparameters a model builder refuses. Still a ValueError, for callers that catch
    that (Keras Tuner)."""
