class PipelineError(Exception):
    """An error the user can act on: the CLI prints its message (no traceback) and exits 1."""
