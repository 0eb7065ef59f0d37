"""langdec: the Language Decoded study as a reproducible, tracked pipeline."""

__version__ = "0.1.0"
