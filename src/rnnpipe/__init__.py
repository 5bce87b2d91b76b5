"""rnnpipe: a reproducible DVC + MLflow pipeline for recurrent sequence models."""

__version__ = "0.1.0"
