"""Ctrl-C and SIGTERM as a request to stop a run cleanly, after the current iteration."""

from __future__ import annotations

import signal

from rich.console import Console


class StopRequest:
    """The first Ctrl-C or SIGTERM asks the loop to stop after the current iteration; a second aborts.
    ``announce``: say so on the console (the main rank does; the others stay quiet)."""

    def __init__(self, console: Console, announce: bool = True):
        self.console, self.announce, self.requested = console, announce, False

    def __enter__(self) -> StopRequest:
        self.previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        if self.announce:
            self.console.print(f"[yellow]{signal.Signals(signum).name}: saving a checkpoint after this iteration "
                               "(again to abort without saving)[/]")  # fmt: skip
