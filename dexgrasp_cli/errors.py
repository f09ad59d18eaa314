"""Errors the CLI reports as one line (``error: <message>``) with exit code 2 and no traceback."""

from __future__ import annotations


class UsageError(Exception):
    """Bad user input. The message is one line naming what was wrong and what is accepted."""

    exit_code = 2
