"""IMDb sentiment (many-to-one): one module per DVC stage, plus the project's own pieces."""
