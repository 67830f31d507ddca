"""Exceptions raised by dlrmcomp."""


class CorruptStreamError(ValueError):
    """A compressed frame is malformed, truncated or tampered with."""
