"""Errors the CLI reports as one line (``error: <message>``) with their exit code and no traceback."""

from __future__ import annotations


class ReportedError(Exception):
    """An error whose message is one line for the user; ``exit_code`` is the command's exit code."""

    exit_code = 1


class UsageError(ReportedError):
    """Bad user input. The message is one line naming what was wrong and what is accepted."""

    exit_code = 2


class PeerLost(ReportedError):
    """Another process of a multi-process run stopped answering. The message is one line naming it."""

    exit_code = 3


def peer_loss_reason(err: Exception) -> str | None:
    """In a few words, why a torch.distributed operation lost its peer; None if ``err`` is no such loss."""
    text = str(err)
    if "Connection closed" in text or "Connection reset" in text:
        return "its connection closed (the process died or was killed)"
    if "Timed out" in text:
        return "no answer within the process group's timeout"
    return None


class RunFailed(ReportedError):
    """A run that a command started (a benchmark's training run, say) failed."""
