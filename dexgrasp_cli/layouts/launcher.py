"""Start the processes of a layout on this machine with torch.distributed's elastic launcher.

``dexgrasp train-teacher --layout disagg --replicas 3`` runs ``python -m dexgrasp_cli train-teacher
...`` four times (``distill`` likewise) under the same launcher torchrun uses (a c10d rendezvous on the loopback address,
no restarts), and each process reads its rank from the environment as it would under torchrun.

Signals: SIGINT and SIGTERM stay with this process (the launcher's own handlers would kill the
workers) and are passed on to every worker, so the learner finishes its iteration, saves ``last.pt``
and ends the run, and the launcher then exits 0. A worker that fails ends the run: the launcher stops
the others and exits 1; the learner's own message names a lost replica.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import sys
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import psutil
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.launcher.api import LaunchConfig, elastic_launch

from dexgrasp_cli.errors import PeerLost
from dexgrasp_cli.layouts.topology import REPLICA, processes, role_name, role_of

if TYPE_CHECKING:
    from dexgrasp_cli.learner.trainer import TrainOptions


def launch(layout: str, replicas: int, args: list[str]) -> int:
    """Run ``dexgrasp ARGS`` as every process of ``layout`` with ``replicas`` replicas or ranks; return
    the launcher's exit code."""
    nprocs = processes(layout, replicas)
    # The elastic agent reports every worker's end at WARNING and ERROR; _report says what matters.
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    config = LaunchConfig(
        min_nodes=1, max_nodes=1, nproc_per_node=nprocs, run_id=f"dexgrasp-{uuid.uuid4().hex[:8]}",
        rdzv_backend="c10d", rdzv_endpoint="127.0.0.1:0", max_restarts=0, monitor_interval=0.2,
        signals_to_handle="SIGHUP,SIGQUIT",
    )  # fmt: skip
    with _forward_stop_signals():
        try:
            elastic_launch(config, sys.executable)("-m", "dexgrasp_cli", *args)
        except ChildFailedError as err:
            _report(layout, nprocs, err.failures)
            return 1
    return 0


def worker_args(options: TrainOptions, res: str | None, learner_device: str | None) -> list[str]:
    """The ``train-teacher`` command line each process of a launch runs: the run as resolved here
    (run directory included, so all processes agree on it)."""
    args = ["train-teacher", "--modality", options.modality, "--num-envs", str(options.num_envs),
            "--device", options.device, "--seed", str(options.seed), "--max-iterations", str(options.max_iterations),
            "--run-dir", str(options.run_dir), "--layout", options.layout, "--replicas", str(options.replicas)]  # fmt: skip
    if res is not None:
        args += ["--res", res]
    if options.resume is not None:
        args += ["--resume", str(options.resume)]
    if learner_device is not None:
        args += ["--learner-device", learner_device]
    for assignment in options.overrides:
        args += ["--set", assignment]
    return args


def _report(layout: str, nprocs: int, failures: dict) -> None:
    """One line for each process whose end nobody else explains. Not a lost peer's (PeerLost's exit
    code: it named the peer, or left quietly), nor one ended by SIGTERM (the elastic agent stops the
    rest of a failed run with it; our processes otherwise take SIGTERM as a request to save and stop),
    nor a replica the learner named. On a loaded machine the agent can notice a dead replica and stop
    the learner before the learner does: then this line names the replica."""
    named = any(failure.exitcode == PeerLost.exit_code for failure in failures.values())
    for rank, failure in sorted(failures.items()):
        if failure.exitcode in (PeerLost.exit_code, -signal.SIGTERM) or (named and role_of(layout, rank, nprocs) == REPLICA):
            continue
        how = f"was killed by {failure.signal_name()}" if failure.exitcode < 0 else f"exited with code {failure.exitcode}"
        where = f"{role_name(layout, rank, nprocs)} (rank {rank} on host {socket.gethostname()}, pid {failure.pid})"
        print(f"error: {where} was lost: it {how}; the run stopped", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _forward_stop_signals() -> Iterator[None]:
    """Pass SIGINT and SIGTERM on to the workers instead of acting on them here."""

    def forward(signum, frame) -> None:
        for child in psutil.Process().children():
            with contextlib.suppress(psutil.Error):
                if any("dexgrasp" in part for part in child.cmdline()):
                    child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
