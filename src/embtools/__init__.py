"""embtools: Unix-style commands that build text-embedding models the E5-mistral way."""

__version__ = "0.1.0"
