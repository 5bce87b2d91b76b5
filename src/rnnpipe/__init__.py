"""rnnpipe: a reproducible DVC + MLflow pipeline for recurrent sequence models."""
