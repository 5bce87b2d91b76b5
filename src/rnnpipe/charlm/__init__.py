"""The character-level language model of The Mysterious Island (many-to-many): one module per
DVC stage, plus the project's own pieces."""
