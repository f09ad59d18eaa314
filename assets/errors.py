"""The object set's error, apart from the geometry so that the command line catches it without numpy."""

from __future__ import annotations


class ObjectSetError(ValueError):
    """Bad object-set input; the message is one line naming what is wrong and what is accepted."""
